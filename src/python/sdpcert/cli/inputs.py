"""What the commands read, checked before any work: the model (an ``.npz`` file, an ``.onnx`` file or a packaged
model's name), the data (``--data``: any folder of MNIST-format IDX files or an ``.npz`` with ``X`` and ``y``;
``$SDPCERT_MNIST_DIR``; or the packaged sample), ``--limit``, ``--json``, the attack list and its settings.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..attacks import ATTACKS
from ..data import MNIST_DIR_ENV, Dataset, load_dataset, sample_dataset
from ..errors import DataIntegrityError, NonFiniteError, SdpcertError, ShapeError
from ..model import TwoLayerNet, load_model

__all__ = ["load_data", "load_model_arg", "data_source", "data_report", "check_data_fits", "check_limit", "json_path",
           "load_model_and_data", "finite_logits", "attack_list", "attack_settings"]


def load_model_arg(spec: Any) -> TwoLayerNet:
    """A model argument: a name ending in ``.onnx`` is an ONNX graph (``TwoLayerNet.from_onnx``; the ``onnx`` extra),
    anything else a model file written by ``TwoLayerNet.save`` or a packaged model's name (``load_model``)."""
    if str(spec).lower().endswith(".onnx"):
        return TwoLayerNet.from_onnx(Path(spec))
    return load_model(str(spec))


def load_data(args: argparse.Namespace, err: Any, dtype: Any = np.float64) -> Dataset:
    """The data of ``--data`` (a folder of IDX files, split ``--split``, or an ``.npz``), else of
    ``$SDPCERT_MNIST_DIR`` (which must hold MNIST itself: its md5s are checked), else the packaged sample; the first
    ``--limit`` examples, ``X`` as ``dtype``. ``load_dataset`` checks every byte (see :mod:`sdpcert.data.dataset`)."""
    limit = getattr(args, "limit", None)
    if args.data is not None:
        path = Path(args.data).expanduser()
        if not path.exists():
            raise DataIntegrityError(f"--data {args.data}: no such folder or file (give a folder of MNIST-format IDX "
                                     f"files or an .npz with X and y)")
        # an .npz is one set of examples: --split names a part of an IDX folder only
        return load_dataset(path, args.split if path.is_dir() else None, limit=limit, dtype=dtype)
    env = os.environ.get(MNIST_DIR_ENV)
    if env:
        folder = Path(env).expanduser()
        try:
            data = load_dataset(folder, args.split, name="mnist", limit=limit, dtype=dtype)
        except SdpcertError as exc:
            raise type(exc)(f"${MNIST_DIR_ENV}={env}: {exc}") from exc
        if data.verified != "md5 (MNIST)":  # the variable names MNIST: another data set there is a mistake
            raise DataIntegrityError(f"${MNIST_DIR_ENV}={env}: the {args.split} files there do not have MNIST's "
                                     f"names and sizes; give other data sets with --data")
        return data
    data = sample_dataset(args.split, limit=limit, dtype=dtype)
    err.print(f"note: no --data and no ${MNIST_DIR_ENV}: using the {data_source(data)}; pass --data DIR for the full "
              f"MNIST {args.split} set or another data set", highlight=False, soft_wrap=True, markup=False)
    return data


def data_source(data: Dataset) -> str:
    """How the reports name the data: ``fashion test from DIR``, ``points from FILE.npz``, ``MNIST test from DIR
    ($SDPCERT_MNIST_DIR)`` or ``packaged MNIST sample (test, first N images)``."""
    if data.verified == "sha256 (packaged)":
        return f"packaged MNIST sample ({data.split}, first {data.n} images)"
    env = os.environ.get(MNIST_DIR_ENV)
    if data.name == "mnist" and env and data.source == str(Path(env).expanduser()):
        return f"MNIST {data.split} from {env} (${MNIST_DIR_ENV})"
    name = "MNIST" if data.name == "mnist" else data.name
    return f"{name}{' ' + data.split if data.split else ''} from {data.source}"


def data_report(data: Dataset, limit: Optional[int]) -> dict:
    """The ``data`` entry of a JSON report: name, split, n (examples used), d, k, sha256 (of the whole file or
    split, whatever ``--limit`` keeps), how it was checked, the files read, and the line the text report prints."""
    return {**data.info(), "limit": limit, "description": data_source(data)}


def check_data_fits(net: TwoLayerNet, data: Dataset, model_name: Any) -> None:
    """``ShapeError`` unless the data has the model's input size d and its classes k (labels 0..k-1, k = max label
    + 1 over the whole file or split): a model and the data it is run on must agree on both."""
    if data.d != net.d:
        raise ShapeError(f"model {model_name} takes d = {net.d} inputs, but the data ({data_source(data)}) has "
                         f"{data.d} features per example")
    if data.k != net.k:
        raise ShapeError(f"model {model_name} has k = {net.k} classes, but the data ({data_source(data)}) has k = "
                         f"{data.k} (labels 0..{data.k - 1}): the model and the data must have the same classes")


def resolve_input_domain(domain: Any, X: np.ndarray) -> Any:
    """``--input-domain``'s value for the data X: "auto" becomes (0, 1) when every input lies in [0, 1] (images),
    else None (the whole ball); anything else is returned as given (checked later by the certifier)."""
    if isinstance(domain, str) and domain == "auto":
        return (0.0, 1.0) if X.size == 0 or (float(np.min(X)) >= 0.0 and float(np.max(X)) <= 1.0) else None
    return domain


def check_limit(args: argparse.Namespace, verb: str) -> None:
    """--limit 0 is refused before anything is loaded: an error rate over no examples is not a result."""
    if args.limit == 0:
        raise SdpcertError(f"--limit 0 leaves no examples to {verb}; use --limit 1 or more")

def json_path(args: argparse.Namespace) -> Optional[Path]:
    """--json OUT as a Path (None without it), refused up front when its folder does not exist."""
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise SdpcertError(f"cannot write --json {json_path}: folder {json_path.parent} does not exist")
    return json_path


def load_model_and_data(args: argparse.Namespace, err: Any) -> tuple[Any, Dataset]:
    """(net, data) for certify / attack: the model (``.npz``, ``.onnx`` or a packaged name) and the data (float64),
    their input size and classes checked against each other."""
    net = load_model_arg(args.model)
    data = load_data(args, err)
    check_data_fits(net, data, args.model)
    err.print(f"model {args.model}: {net!r}, fingerprint {net.fingerprint()[:16]}; data: {data.describe()}",
              highlight=False, soft_wrap=True, markup=False)
    return net, data


def finite_logits(net: Any, X: Any) -> Any:
    """The model's float64 logits on X, refused (NonFiniteError) when some overflow to inf/NaN: then no error rate,
    attack or certificate of this model means anything, and the pair SDPs need not be solved to find that out."""
    with np.errstate(over="ignore", invalid="ignore"):
        logits = net.forward(X)
    overflowed = ~np.all(np.isfinite(logits), axis=1)
    if overflowed.any():
        raise NonFiniteError(f"the model's logits are not finite (they overflow float64) on {int(overflowed.sum())} "
                             f"of the {len(X)} examples, e.g. example {int(np.flatnonzero(overflowed)[0])}: the "
                             f"weights are too large for float64 on this data")
    return logits

def attack_list(text: str) -> list[str]:
    attacks = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [a for a in attacks if a not in ATTACKS]
    if bad or not attacks:
        raise SdpcertError(f"--methods: unknown attack(s) {', '.join(bad) if bad else repr(text)}; "
                           f"choose from {','.join(ATTACKS)}")
    return list(dict.fromkeys(attacks))


def attack_settings(args: argparse.Namespace) -> dict:
    """Validated PGD / CW settings (raises SdpcertError with the option's name)."""
    if args.steps < 1:
        raise SdpcertError(f"--steps must be a positive integer; got {args.steps}")
    if args.restarts < 1:
        raise SdpcertError(f"--restarts must be a positive integer; got {args.restarts}")
    if args.step_size is not None and not (math.isfinite(args.step_size) and args.step_size > 0):
        raise SdpcertError(f"--step-size must be positive and finite; got {args.step_size}")
    return {"steps": args.steps, "restarts": args.restarts, "step_size": args.step_size, "seed": args.seed}
