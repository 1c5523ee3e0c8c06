"""Downloads against a small HTTP server on 127.0.0.1 (never the internet): checksums before
unpacking, resume with Range, offline and corrupt cases, and `retain data check`."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retain.cli.main import main
from retain.data.catalog import DatasetFiles, Remote
from retain.data.check import check
from retain.data.cifar import load_cifar10
from retain.data.download import download
from retain.errors import DataError
from vision_fixtures import write_cifar10


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_once: set[str] = set()  # files whose first response stops halfway
    log: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        name = self.path.lstrip("/")
        self.log.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404)
            return
        body, start = self.files[name], 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in self.cut_once:
            self.cut_once.discard(name)
            self.wfile.write(body[start: start + (len(body) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.cut_once, _Handler.log = {}, set(), []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield _Handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def _cifar_catalog(tmp_path: Path) -> tuple[dict[str, DatasetFiles], bytes]:
    folder = write_cifar10(tmp_path / "src")
    blob = _tar_gz(folder)
    contents = {f"cifar-10-batches-py/{p.name}": hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    remote = Remote("cifar-10-python.tar.gz", ("http://unused.invalid/x",), hashlib.md5(blob).hexdigest(), archive=True)
    return {"cifar10": DatasetFiles("cifar10", "", (remote,), contents)}, blob


def test_download_verifies_then_unpacks_and_check_passes(tmp_path, server):
    handler, url = server
    catalog, blob = _cifar_catalog(tmp_path)
    handler.files["cifar-10-python.tar.gz"] = blob
    data = tmp_path / "data"
    download("cifar10", data, base_url=url, catalog=catalog, report=lambda s: None)
    assert load_cifar10(data, verify=False)[0].shape == (100, 3, 32, 32)
    assert [r.status for r in check(data, catalog=catalog)] == ["ok"]
    assert not list(data.glob("*.part")) and not list(data.glob(".unpack-*"))
    (data / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    result = check(data, catalog=catalog)[0]
    assert result.status == "corrupt" and "test_batch" in result.detail


def test_interrupted_download_resumes_with_range(tmp_path, server):
    handler, url = server
    catalog, blob = _cifar_catalog(tmp_path)
    handler.files["cifar-10-python.tar.gz"] = blob
    handler.cut_once.add("cifar-10-python.tar.gz")
    data = tmp_path / "data"
    with pytest.raises(DataError, match="interrupted.*run the same command again to resume"):
        download("cifar10", data, base_url=url, catalog=catalog, report=lambda s: None)
    part = data / "cifar-10-python.tar.gz.part"
    assert 0 < part.stat().st_size < len(blob)
    assert not (data / "cifar-10-python.tar.gz").exists() and not (data / "cifar-10-batches-py").exists()
    download("cifar10", data, base_url=url, catalog=catalog, report=lambda s: None)
    assert handler.log[-1] == ("cifar-10-python.tar.gz", f"bytes={len(blob) // 2}-")
    assert (data / "cifar-10-python.tar.gz").read_bytes() == blob and not part.exists()
    assert [r.status for r in check(data, catalog=catalog)] == ["ok"]


def test_corrupt_download_is_deleted_and_never_unpacked(tmp_path, server):
    handler, url = server
    catalog, blob = _cifar_catalog(tmp_path)
    handler.files["cifar-10-python.tar.gz"] = blob[:-10] + b"0123456789"
    data = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch.*nothing was unpacked"):
        download("cifar10", data, base_url=url, catalog=catalog, report=lambda s: None)
    assert sorted(p.name for p in data.iterdir()) == []


def test_offline_gives_a_clear_message(tmp_path):
    catalog, _ = _cifar_catalog(tmp_path)
    with pytest.raises(DataError, match="could not download.*cannot connect.*offline.*by hand"):
        download("cifar10", tmp_path / "d", base_url="http://127.0.0.1:9", catalog=catalog, report=lambda s: None)
    with pytest.raises(DataError, match="unknown dataset 'svhn'"):
        download("svhn", tmp_path / "d", catalog=catalog)


def test_every_hint_to_fetch_or_check_names_the_data_directory(tmp_path):
    catalog, _ = _cifar_catalog(tmp_path)
    with pytest.raises(DataError, match=rf"`retain data check cifar10 --data-dir {tmp_path / 'd'}`"):
        download("cifar10", tmp_path / "d", base_url="http://127.0.0.1:9", catalog=catalog, report=lambda s: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    (mnist,) = check(empty, ["mnist"])
    assert mnist.status == "missing" and f"retain data download mnist --data-dir {empty}" in mnist.detail
    with pytest.raises(DataError, match=rf"retain data download cifar10 --data-dir {empty}"):
        load_cifar10(empty)


def test_archive_with_a_path_outside_the_folder_is_refused(tmp_path, server):
    handler, url = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    blob = buf.getvalue()
    handler.files["evil.tar.gz"] = blob
    catalog = {"evil": DatasetFiles("evil", "", (Remote("evil.tar.gz", ("x",), hashlib.md5(blob).hexdigest(), True),))}
    with pytest.raises(DataError, match="refuses to unpack member '../escaped.txt'"):
        download("evil", tmp_path / "d", base_url=url, catalog=catalog, report=lambda s: None)
    assert not (tmp_path / "escaped.txt").exists() and not list((tmp_path / "d").glob(".unpack-*"))


def test_cli_download_rejects_files_that_are_not_the_official_ones(tmp_path, server, capsys):
    handler, url = server
    handler.files["train-images-idx3-ubyte.gz"] = b"not mnist"
    rc = main(["data", "download", "mnist", "--data-dir", str(tmp_path), "--base-url", url])
    assert rc == 2 and "checksum mismatch" in capsys.readouterr().err
    assert not list((tmp_path / "mnist").iterdir())


def test_cli_check_reports_real_mnist_and_generated_cifar(tmp_path, mnist_dir, capsys):
    assert main(["data", "check", "mnist", "--data-dir", str(mnist_dir)]) == 0
    assert "mnist      ok" in capsys.readouterr().out
    write_cifar10(tmp_path)
    assert main(["data", "check", "--data-dir", str(tmp_path)]) == 1  # generated files are not official
    out = capsys.readouterr().out
    assert "cifar10    corrupt" in out and "core50     missing" in out


def test_plain_files_land_in_the_dataset_folder_and_a_second_call_downloads_nothing(tmp_path, server):
    handler, url = server
    blobs = {"LUP.pkl": b"lup" * 1000, "paths.pkl": b"paths" * 1000}
    handler.files.update(blobs)
    remotes = tuple(Remote(n, ("x",), hashlib.md5(b).hexdigest()) for n, b in blobs.items())
    catalog = {"core50": DatasetFiles("core50", "core50", remotes)}
    folder = download("core50", tmp_path, base_url=url, catalog=catalog, report=lambda s: None)
    assert folder == tmp_path / "core50" and all((folder / n).read_bytes() == b for n, b in blobs.items())
    assert [r.status for r in check(tmp_path, catalog=catalog)] == ["ok"]
    requests = len(handler.log)
    download("core50", tmp_path, base_url=url, catalog=catalog, report=lambda s: None)
    assert len(handler.log) == requests  # verified files are not fetched again
    (folder / "LUP.pkl").unlink()
    assert check(tmp_path, catalog=catalog)[0].status == "incomplete"
