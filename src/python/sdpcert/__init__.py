"""sdpcert: sound SDP certificates of adversarial robustness for one-hidden-layer networks.

Raghunathan, Steinhardt & Liang, "Certified defenses against adversarial examples" (ICLR 2018): for a network
f(x) = V sigma(W x + b) + b2 and an l_inf radius eps, every certified input provably keeps its label under every
perturbation of size eps.
"""

from .errors import DataIntegrityError, ModelFileError, NonFiniteError, SdpcertError, ShapeError
from .network import TwoLayerNet
from .data import load_mnist, load_mnist_sample
from .certify import CertificationResult, Certifier, PairBounds

__all__ = [
    "TwoLayerNet",
    "load_mnist",
    "load_mnist_sample",
    "Certifier",
    "CertificationResult",
    "PairBounds",
    "SdpcertError",
    "ShapeError",
    "NonFiniteError",
    "ModelFileError",
    "DataIntegrityError",
]
__version__ = "0.1.0"
