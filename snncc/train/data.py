"""Datasets for the trainer: integer inputs (as the compiled model reads them) + labels."""
from __future__ import annotations

import numpy as np

from ..errors import DatasetError, SnnccError


def load_dataset(dataset, limit_train=None, limit_test=None, val: int = 0) -> dict:
    """``dataset``: a name of :mod:`snncc.data` ("fashion-mnist", ...) or a dict / tuple
    (x_train, y_train[, x_test, y_test]) of integer inputs (uint8 pixels) and labels.
    ``val`` > 0: the last ``val`` training images become the "val" split (x_val, y_val)
    and are removed from the training images before ``limit_train`` takes the first N of
    the rest (so no validation image is ever trained on); 0: no val split (None)."""
    from .. import data

    if isinstance(dataset, str):
        xtr, ytr = data.load(dataset, "train")
        xte, yte = data.load(dataset, "test")
    elif isinstance(dataset, dict):
        xtr, ytr, xte, yte = (dataset.get(k) for k in ("x_train", "y_train", "x_test", "y_test"))
    elif isinstance(dataset, (tuple, list)) and len(dataset) in (2, 4):
        xtr, ytr, xte, yte = (list(dataset) + [None, None])[:4]
    else:
        raise DatasetError("dataset must be a dataset name (e.g. 'fashion-mnist') or (x_train, y_train"
                           "[, x_test, y_test]) arrays of integer inputs and labels")
    out = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}
    for k in ("x_train", "x_test"):
        x = out[k]
        if x is None:
            continue
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise DatasetError(f"{k} holds {x.dtype} values: the trainer takes integer inputs as the compiled "
                               "model reads them (uint8 pixels; they are scaled by input_scale)")
        out[k] = x
    for k in ("y_train", "y_test"):
        if out[k] is not None:
            out[k] = np.asarray(out[k]).astype(np.int64)
    out["x_val"] = out["y_val"] = None
    if val:
        n = len(out["x_train"])
        if val >= n:
            raise DatasetError(f"val = {val}: the training split has {n} images; at least one must stay for "
                               "training")
        out["x_val"], out["y_val"] = out["x_train"][n - val:], out["y_train"][n - val:]
        out["x_train"], out["y_train"] = out["x_train"][:n - val], out["y_train"][:n - val]
    if limit_train:
        out["x_train"], out["y_train"] = out["x_train"][:limit_train], out["y_train"][:limit_train]
    if limit_test and out["x_test"] is not None:
        out["x_test"], out["y_test"] = out["x_test"][:limit_test], out["y_test"][:limit_test]
    return out


def fit_shape(d: dict, model) -> tuple:
    """Add the channel axis of gray images for a model that starts with a Conv2d, check
    the model runs on one sample and its output has a logit for every label; returns the
    input shape (without batch)."""
    import torch
    from torch import nn

    from .. import nn as snn

    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    for k in ("x_train", "x_test", "x_val"):
        x = d.get(k)
        if x is not None and isinstance(first, nn.Conv2d) and x.ndim == 3:
            d[k] = x[:, None]
    shape = tuple(d["x_train"].shape[1:])
    try:
        with torch.no_grad():
            out = snn.run(model.eval(), torch.zeros((1,) + shape), steps=1)
    except Exception as e:  # noqa: BLE001 (any failure means: this input does not fit)
        raise SnnccError(f"the dataset's samples have shape {shape}, which the model cannot take: "
                         f"{type(e).__name__}: {e}") from None
    n_out = int(np.prod(out.shape[2:]))
    labels = int(max(d["y_train"].max(), d["y_test"].max() if d["y_test"] is not None else 0)) + 1
    if n_out < labels:
        raise SnnccError(f"the model has {n_out} outputs but the dataset has {labels} classes")
    if d["x_test"] is not None and tuple(d["x_test"].shape[1:]) != shape:
        raise SnnccError(f"train samples have shape {shape} but test samples {tuple(d['x_test'].shape[1:])}")
    return shape
