"""sdpcert: sound SDP certificates of adversarial robustness for one-hidden-layer networks.

Raghunathan, Steinhardt & Liang, "Certified defenses against adversarial examples" (ICLR 2018): for a network
f(x) = V sigma(W x + b) + b2 and an l_inf radius eps, every certified input provably keeps its label under every
perturbation of size eps. The subpackages follow the flow of the data: ``model`` (weights) -> ``data`` ->
``certify`` (pair SDPs, growth, margins, LP) -> ``attacks`` -> ``torch``/``training`` -> ``experiments`` -> ``cli``;
see docs/design.md.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import (CoreArgumentError, DataIntegrityError, ModelFileError, NonFiniteError, SdpcertError, ShapeError,
                     UnsoundCertificateError)
from .model import TwoLayerNet
from .data import load_dataset, load_mnist, load_mnist_sample
from .certify import CertificationResult, Certifier, PairBounds

__all__ = [
    "TwoLayerNet",
    "load_mnist",
    "load_dataset",
    "load_mnist_sample",
    "Certifier",
    "CertificationResult",
    "PairBounds",
    "SdpcertError",
    "ShapeError",
    "NonFiniteError",
    "ModelFileError",
    "DataIntegrityError",
    "CoreArgumentError",
    "UnsoundCertificateError",
]

try:
    __version__ = version("sdpcert")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"
