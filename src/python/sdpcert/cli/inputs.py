"""What the ``certify`` and ``attack`` commands read, checked before any work: the model, the data (``--data``,
``$SDPCERT_MNIST_DIR`` or the packaged sample), ``--limit``, ``--json``, the attack list and its settings.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..attacks import ATTACKS
from ..data import MNIST_DIR_ENV, load_mnist, load_mnist_sample
from ..errors import NonFiniteError, SdpcertError, ShapeError
from ..model import load_model

__all__ = ["load_data", "check_limit", "json_path", "load_model_and_data", "finite_logits", "attack_list",
           "attack_settings"]


def load_data(args: argparse.Namespace, err: Any) -> tuple[Any, Any, str]:
    if args.data is not None:
        if not Path(args.data).is_dir():
            raise SdpcertError(f"--data {args.data}: no such folder (it should hold the MNIST IDX files)")
        X, y = load_mnist(args.split, folder=args.data, limit=args.limit, dtype="float64")
        return X, y, f"MNIST {args.split} from {args.data}"
    if os.environ.get(MNIST_DIR_ENV):
        X, y = load_mnist(args.split, limit=args.limit, dtype="float64")
        return X, y, f"MNIST {args.split} from ${MNIST_DIR_ENV}={os.environ[MNIST_DIR_ENV]}"
    X, y = load_mnist_sample(args.split, limit=args.limit, dtype="float64")
    source = f"packaged MNIST sample ({args.split}, first {len(y)} images)"
    err.print(f"note: no --data and no ${MNIST_DIR_ENV}: using the {source}; "
              f"pass --data DIR for the full MNIST {args.split} set", highlight=False, soft_wrap=True, markup=False)
    return X, y, source


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


def load_model_and_data(args: argparse.Namespace, err: Any) -> tuple[Any, Any, Any, str]:
    """(net, X, y, source) for certify / attack: the model (file or packaged name), the data, their sizes checked."""
    net = load_model(args.model)
    X, y, source = load_data(args, err)
    if X.shape[1] != net.d:
        raise ShapeError(f"model {args.model} takes d = {net.d} inputs, but the data ({source}) has "
                         f"{X.shape[1]} features per example")
    err.print(f"model {args.model}: {net!r}, fingerprint {net.fingerprint()[:16]}; data: {source}, n = {len(y)}",
              highlight=False, soft_wrap=True, markup=False)
    return net, X, y, source


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
