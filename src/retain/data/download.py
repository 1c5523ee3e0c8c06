"""Downloads with resume and checksums, and the check of what a data directory holds.

A file is fetched into ``NAME.part``; an interrupted transfer leaves the ``.part`` behind and the
next call resumes it with an HTTP ``Range`` request. Only a file whose MD5 matches the published
one is renamed into place, and only then is an archive unpacked, into a temporary folder that is
renamed into place when complete: a failure never leaves a half-written file under its final name.
``RETAIN_DATA_MIRROR`` (or ``base_url``) replaces the published addresses with ``BASE/FILENAME``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

from retain.data.catalog import DatasetFiles, Remote, default_catalog
from retain.errors import DataError

Report = Callable[[str], None]
CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _urls(remote: Remote, base_url: str | None) -> tuple[str, ...]:
    base = base_url or os.environ.get("RETAIN_DATA_MIRROR")
    return (base.rstrip("/") + "/" + remote.filename,) if base else remote.urls


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (Range from its current size); raise on a short read."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "retain", **({"Range": f"bytes={offset}-"} if offset else {})}
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the .part is already complete
            return
        raise
    with resp:
        if offset and resp.status != 206:  # the server ignored Range: start over
            offset = 0
        expected = resp.headers.get("Content-Length")
        got = 0
        with open(part, "ab" if offset else "wb") as f:
            while block := resp.read(CHUNK):
                f.write(block)
                got += len(block)
    if expected is not None and got < int(expected):
        raise ConnectionError(f"connection closed after {offset + got} bytes")


def fetch(remote: Remote, folder: Path, *, base_url: str | None = None, timeout: float = 60.0,
          report: Report = print, check: str | None = None) -> Path:
    """Download ``remote`` into ``folder`` (resuming a ``.part``), verify its MD5, rename into place.
    ``check``: the command that verifies a file fetched by hand (default: the check of ``folder``)."""
    dest = folder / remote.filename
    if dest.is_file() and md5_of(dest) == remote.md5:
        report(f"{dest}: present, checksum ok")
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in _urls(remote, base_url):
        resumed = part.stat().st_size if part.exists() else 0
        report(f"fetching {url}" + (f" (resuming at {resumed} bytes)" if resumed else ""))
        try:
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as exc:
            errors.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            errors.append(f"{url}: cannot connect ({exc.reason})")
        except (OSError, HTTPException) as exc:  # reset, timeout, short read: keep the .part
            raise DataError(f"{remote.filename}: download interrupted ({exc}); {part} keeps "
                            f"{part.stat().st_size if part.exists() else 0} bytes, run the same command "
                            "again to resume") from None
    else:
        raise DataError(f"{remote.filename}: could not download ({'; '.join(errors)}). If this machine is "
                        f"offline, fetch {remote.urls[0]} by hand into {folder} (md5 {remote.md5}) and run "
                        f"`{check or f'retain data check --data-dir {folder}'}`")
    actual = md5_of(part)
    if actual != remote.md5:
        part.unlink()
        raise DataError(f"{remote.filename}: checksum mismatch (md5 {actual}, published {remote.md5}); "
                        "the download was corrupt and has been deleted, nothing was unpacked")
    os.replace(part, dest)
    return dest


def _safe_members(tar: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        if m.name.startswith(("/", "\\")) or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
            raise DataError(f"{source}: refuses to unpack member {m.name!r} (absolute, outside the "
                            "folder, or a link/device)")
    return members


def unpack(archive: Path, into: Path, report: Report = print) -> list[Path]:
    """Unpack a verified .tar.gz into a temporary folder, then rename each top-level entry into
    ``into`` (replacing an older copy); returns the entries."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=into))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, members=_safe_members(tar, archive))
        placed = []
        for entry in sorted(tmp.iterdir()):
            target = into / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)
            placed.append(target)
        report(f"unpacked {archive.name} -> {', '.join(p.name for p in placed)}")
        return placed
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot unpack ({exc.__class__.__name__}: {exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(name: str, data_dir: Path | str, *, base_url: str | None = None,
             catalog: dict[str, DatasetFiles] | None = None, report: Report = print) -> Path:
    """Fetch and verify every file of dataset ``name`` into ``data_dir``; unpack archives."""
    catalog = catalog if catalog is not None else default_catalog()
    if name not in catalog:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(catalog))}")
    spec, root = catalog[name], Path(data_dir)
    folder = root / spec.folder if spec.folder else root
    for remote in spec.remotes:
        path = fetch(remote, folder, base_url=base_url, report=report,
                     check=f"retain data check {name} --data-dir {root}")
        if remote.archive:
            unpack(path, folder, report)
    return folder
