"""The network and its weights: the start of the flow (weights -> pair operators -> eigen/SDP -> bounds -> reports).

- ``network.py``: ``TwoLayerNet``, the maths of ``f(x) = V σ(W x + b) + b2`` and its torch conversion.
- ``files.py``: the ``.npz`` model file, written and read (with every check) for ``TwoLayerNet.save``/``load``.
- ``pretrained.py``: the models that ship with the package (``load_pretrained("sdp-nn")``).
- ``onnx.py``: ONNX graphs in and out (``TwoLayerNet.from_onnx`` / ``to_onnx``; the optional ``onnx`` extra).
"""

from .files import MODEL_FORMAT_VERSION
from .network import ACTIVATIONS, TwoLayerNet, immutable_copy
from .pretrained import available, load_model, load_pretrained, pretrained_info

__all__ = ["TwoLayerNet", "ACTIVATIONS", "MODEL_FORMAT_VERSION", "immutable_copy", "load_model", "load_pretrained",
           "pretrained_info", "available"]
