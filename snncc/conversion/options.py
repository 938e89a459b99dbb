"""The command line of SNNQ's flow (``snncc compile ann.pt --convert --bwr --tnp --dataset
fashion-mnist --config exp/config.yaml``): calibration images named by ``--calib`` or
``--dataset``, the ``[convert]`` table, the input shape a dataset implies."""
from __future__ import annotations

from ..errors import SnnccError

#: images per calibration set when --dataset names only the dataset (SNNQ's `calibrate: 1024`)
DEFAULT_CALIB = 1024


def calib_spec(args, default: str) -> str:
    """The calibration images of a compile, as NAME:N: ``--calib``, else ``--dataset NAME``
    with the count of ``default`` (the config's), else ``default``."""
    from ..data import parse_spec

    dataset = getattr(args, "dataset", None)
    if args.calib is not None:
        if dataset is not None and parse_spec(args.calib)[0] != parse_spec(dataset)[0]:
            raise SnnccError(f"--calib {args.calib} and --dataset {dataset} name different datasets: give one")
        return args.calib
    if dataset is not None:
        name, count = parse_spec(dataset)
        return f"{name}:{count or parse_spec(default)[1] or DEFAULT_CALIB}"
    return default


def dataset_options(args) -> dict:
    """``example_input`` from ``--dataset`` (or, converting, ``--calib``) when
    ``--input-shape`` is not given: the images the model takes say their shape."""
    from ..frontends import find

    spec = getattr(args, "dataset", None) or (args.calib if getattr(args, "frontend_convert", False) else None)
    if spec is None or args.frontend_example_input is not None or find(args.model).name != "pytorch":
        return {}
    from ..data import load_spec, parse_spec

    x, _ = load_spec(f"{parse_spec(spec)[0]}:1")
    return {"example_input": tuple(int(d) for d in x.shape[1:])}


def conversion_options(args) -> dict:
    """The conversion options of a compile: on with ``--convert`` or ``[convert] enabled``;
    then the ConvertConfig and the calibration images as NAME:N (``--calib``/``--dataset``/
    ``[convert] calib``), read only where a threshold needs them (percentiles)."""
    from .config import ConvertConfig

    cc = ConvertConfig.from_file(args.config) if args.config else ConvertConfig()
    if not (args.frontend_convert or cc.enabled):
        return {}
    return {"convert": True, "conversion": cc, "calib": calib_spec(args, cc.calib)}  # loaded when needed
