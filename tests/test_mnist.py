"""The MNIST IDX reader on the real files and on corrupt copies."""

import gzip
import shutil

import pytest
import torch

from retain.benchmarks import make_benchmark
from retain.data.idx import load_mnist, parse_idx
from retain.errors import DataError

pytestmark = pytest.mark.mnist


def test_real_mnist_loads_with_checksums(mnist_dir):
    xtr, ytr, xte, yte = load_mnist(mnist_dir)
    assert xtr.shape == (60000, 28, 28) and xtr.dtype == torch.uint8 and xte.shape == (10000, 28, 28)
    assert torch.bincount(ytr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_benchmarks_build(mnist_dir):
    p = make_benchmark("permuted-mnist", tasks=20, data_dir=mnist_dir)
    assert len(p) == 20 and p.experiences[19].train_x.data_ptr() == p.experiences[0].train_x.data_ptr()
    s = make_benchmark("split-mnist", data_dir=mnist_dir)
    assert sum(e.num_train for e in s.experiences) == 60000
    r = make_benchmark("rotated-mnist", tasks=3, data_dir=mnist_dir)
    x = r.experiences[1].prepare(r.experiences[1].test_x[:4])
    assert x.shape == (4, 784) and 0 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6


def _copy(mnist_dir, tmp_path):
    for f in mnist_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_truncated_gzip_is_a_named_error(mnist_dir, tmp_path):
    d = _copy(mnist_dir, tmp_path)
    f = d / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot read"):
        load_mnist(d)


def test_wrong_content_fails_checksum(mnist_dir, tmp_path):
    d = _copy(mnist_dir, tmp_path)
    f = d / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(f.read_bytes()))
    data[100] = (data[100] + 1) % 10
    f.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist(d)


def test_idx_parser_checks_magic_and_size():
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(b"\x12\x34\x08\x01" + b"\x00" * 8, "x")
    with pytest.raises(DataError, match="needs 3"):
        parse_idx(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02", "x")
    assert parse_idx(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02", "x").tolist() == [1, 2]
