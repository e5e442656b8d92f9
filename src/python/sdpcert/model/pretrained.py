"""Networks that ship with the package: real, certifiably robust models to certify and attack without training.

``load_pretrained("sdp-nn")`` returns the SDP-NN of the paper's recipe (784-500-10 ReLU, trained with the SDP dual
penalty at eps = 0.1 on MNIST; docs/design.md §2, training against the certificate); ``load_pretrained("sdp-nn-cs")``
the same objective with the Crammer-Singer hinge and 32 Lanczos matvecs per pair and step, which meets the paper's
4.2% clean / 35% certified (docs/results/sdpnn-ab: 4.20% / 34.28%); ``load_pretrained("crown-box-nn")`` a
784-500-10 ReLU net trained against per-example linear-relaxation bounds over the ball intersected with [0, 1]
(``sdpcert train --objective crown-box``; docs/results/crown-box-nn: certified 9.66% at eps = 0.1 by ``best``).
``available()`` lists them. ``pretrained_info(name)`` returns how it was trained (the command, the configuration,
the package commit) and what was measured on it when it was packaged (clean, PGD and certified error on the 10,000
MNIST test images; records written with ``--box-methods`` also have
``evaluation["box_certificates"]``: per-example certificates such as ``best`` over the ball intersected with the
input box) -- numbers written by ``tools/package_model.py``, never typed in.

The command line takes a packaged name wherever it takes a model file: ``sdpcert certify sdp-nn --eps 0.1``.
The weights are stored as float32 (the net was trained in float32, so this is exact; see ``TwoLayerNet.save``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, SdpcertError
from .network import TwoLayerNet

__all__ = ["available", "load_pretrained", "pretrained_info", "load_model"]

#: The packaged models' folder inside the installed package (``src/python/sdpcert/_data/models``).
_PACKAGE_DIR = "_data/models"


def _models_dir() -> Path:
    return Path(str(resources.files("sdpcert").joinpath(_PACKAGE_DIR)))


def available() -> list[str]:
    """Names of the packaged models (a name is packaged when both NAME.npz and its NAME.json are present)."""
    folder = _models_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.npz") if p.with_suffix(".json").is_file())


def _check_name(name: Any) -> Path:
    names = available()
    if not isinstance(name, str) or name not in names:
        raise SdpcertError(f"no packaged model named {name!r}; packaged: {', '.join(names) or 'none'}")
    return _models_dir() / f"{name}.npz"


def load_pretrained(name: str) -> TwoLayerNet:
    """The packaged model ``name`` (see :func:`available`), checked like any model file."""
    return TwoLayerNet.load(_check_name(name))


def pretrained_info(name: str) -> dict:
    """How the packaged model ``name`` was trained and what was measured on it (the JSON written beside it)."""
    path = _check_name(name).with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"the description {path} of packaged model {name!r} is unreadable: {exc}") from exc


def load_model(spec: str) -> TwoLayerNet:
    """A model file path, or the name of a packaged model when no such file exists (the command line's rule)."""
    path = Path(spec)
    if path.exists():
        return TwoLayerNet.load(path)
    names = available()
    if spec in names:
        return load_pretrained(spec)
    try:
        return TwoLayerNet.load(path)
    except ModelFileError as exc:
        if names:
            raise ModelFileError(f"{exc} (nor is it a packaged model: {', '.join(names)})") from exc
        raise
