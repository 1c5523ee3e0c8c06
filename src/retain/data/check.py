"""``retain data check``: which datasets a data directory holds, and whether their files are the
official ones (MD5 of the unpacked content)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retain.data.catalog import DatasetFiles, default_catalog
from retain.data.download import md5_of
from retain.errors import DataError


@dataclass
class CheckResult:
    dataset: str
    status: str  # "ok", "missing", "incomplete" or "corrupt"
    detail: str


def _expected_files(spec: DatasetFiles) -> dict[str, str]:
    if spec.contents:
        return spec.contents
    prefix = f"{spec.folder}/" if spec.folder else ""
    return {prefix + r.filename: r.md5 for r in spec.remotes}


def _check_mnist(root: Path) -> CheckResult:
    from retain.data.idx import MNIST_MD5, find_file, read_idx

    missing, bad = [], []
    for stem, md5 in MNIST_MD5.items():
        try:
            path = find_file(root, stem)
        except DataError:
            missing.append(stem)
            continue
        try:
            read_idx(path, md5=md5)  # content MD5: gzip wrappers differ between mirrors
        except DataError as exc:  # say what is wrong (truncated, not IDX, wrong shape), not only "corrupt"
            bad.append(f"{stem}: {str(exc).removeprefix(str(path) + ': ')}")
    return _verdict("mnist", len(MNIST_MD5), missing, bad, root)


def _verdict(name: str, total: int, missing: list[str], bad: list[str], root: Path) -> CheckResult:
    if bad:
        return CheckResult(name, "corrupt", "; ".join(b if ": " in b else f"{b}: checksum mismatch" for b in bad))
    if len(missing) == total:
        return CheckResult(name, "missing", f"run `retain data download {name} --data-dir {root}`")
    if missing:
        return CheckResult(name, "incomplete", "missing: " + ", ".join(missing) +
                           f" (`retain data download {name} --data-dir {root}` fetches them)")
    return CheckResult(name, "ok", f"{total} files, checksums match")


def check(data_dir: Path | str, names: list[str] | None = None,
          catalog: dict[str, DatasetFiles] | None = None) -> list[CheckResult]:
    """One result per dataset; a file present with the wrong MD5 makes the dataset "corrupt"."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data directory does not exist")
    defaults = default_catalog()
    catalog = catalog if catalog is not None else defaults
    unknown = sorted(set(names or ()) - set(catalog))
    if unknown:
        raise DataError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(sorted(catalog))}")
    out = []
    for name in names or sorted(catalog):
        if name == "mnist" and catalog[name] == defaults["mnist"]:
            out.append(_check_mnist(root))
            continue
        files = _expected_files(catalog[name])
        missing = [f for f in files if not (root / f).is_file()]
        bad = [f for f in files if f not in missing and md5_of(root / f) != files[f]]
        out.append(_verdict(name, len(files), missing, bad, root))
    return out

