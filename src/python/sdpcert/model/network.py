"""The one-hidden-layer network that sdpcert certifies: ``f(x) = V σ(W x + b) + b2``.

``TwoLayerNet`` is the single source of the weights for everything downstream (pair operators, SDP values,
bounds, attacks). It keeps float64, C-contiguous copies that nobody can make writable (see ``immutable_copy``), so
a certificate computed from a model cannot be invalidated by someone editing the arrays afterwards, and its
``fingerprint()`` stays valid. Weights that float64 cannot hold exactly (64-bit integers beyond 2^53, long double
values between two doubles) are refused: the certificate would be about a rounded, different network.

Model files (``save``/``load``) are ``.npz`` archives read with ``allow_pickle=False``, so loading a model never runs
code; the file format and its checks live in ``files.py``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import as_numeric_array, check_exact_float64, check_finite
from ..errors import ModelFileError, SdpcertError, ShapeError
from .files import MODEL_FORMAT_VERSION, WEIGHT_NAMES, read_model_file, save_model

__all__ = ["TwoLayerNet", "ACTIVATIONS", "MODEL_FORMAT_VERSION", "WEIGHT_NAMES", "immutable_copy"]

#: Activation name -> L, the upper end of σ' ∈ [0, L] used by the certificate (docs/design.md §1).
ACTIVATIONS: dict[str, float] = {"relu": 1.0, "sigmoid": 0.25, "tanh": 1.0}


# ----------------------------------------------------------------------------------------------- immutability
def immutable_copy(arr: Any, dtype: Any = None) -> np.ndarray:
    """A C-contiguous copy of ``arr`` (as ``dtype``) that nobody can make writable; ``arr`` itself when it already is
    such an array of that dtype.

    ``flags.writeable = False`` alone is undone by ``flags.writeable = True`` whenever the array owns its memory.
    This copy is a view of an immutable ``bytes`` object, and numpy refuses to make that view (or its base)
    writable, so whatever was computed from the values -- a fingerprint, cached pair SDP values, a growth matrix --
    stays true of them for as long as the array exists.
    """
    if isinstance(arr, np.ndarray) and (dtype is None or arr.dtype == np.dtype(dtype)) and _is_immutable(arr):
        return arr
    src = np.ascontiguousarray(arr, dtype=dtype)
    return np.frombuffer(src.tobytes(), dtype=src.dtype).reshape(src.shape)


def _is_immutable(arr: np.ndarray) -> bool:
    """True for a C-contiguous read-only array whose memory belongs to a ``bytes`` object (see immutable_copy)."""
    if arr.flags.writeable or not arr.flags.c_contiguous:
        return False
    base: Any = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, bytes)


def _normalize_activation(activation: Any) -> str:
    name = activation.lower() if isinstance(activation, str) else activation
    if name not in ACTIVATIONS:
        raise SdpcertError(f"unknown activation {activation!r}; valid activations are {sorted(ACTIVATIONS)}")
    return name


# ----------------------------------------------------------------------------------------------- activations
def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-|z|) never overflows, and both branches keep full relative precision in the tails.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


_ACTIVATION_FUNCTIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}


# ----------------------------------------------------------------------------------------------- the network
class TwoLayerNet:
    """One-hidden-layer network ``f(x) = V σ(W x + b) + b2`` with ``W: (m, d)``, ``V: (k, m)``.

    Parameters
    ----------
    W, b, V, b2
        Weights of shapes ``(m, d)``, ``(m,)``, ``(k, m)``, ``(k,)``, with ``m, d >= 1`` and ``k >= 2``.
        Any real numeric array-like (or CPU torch tensor) whose values float64 holds exactly; stored as float64
        copies that cannot be made writable.
    activation
        ``"relu"``, ``"sigmoid"`` or ``"tanh"``.

    Raises ``ShapeError`` for wrong ranks or mismatched sizes, ``NonFiniteError`` for NaN/inf,
    ``SdpcertError`` for a non-numeric dtype, values that float64 cannot represent exactly (e.g. int64 beyond 2^53,
    long double between two doubles) or an unknown activation.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> net = TwoLayerNet(rng.normal(size=(5, 3)), np.zeros(5), rng.normal(size=(2, 5)), np.zeros(2))
    >>> net
    TwoLayerNet(d=3, m=5, k=2, activation='relu')
    >>> net.forward(np.ones(3)).shape
    (2,)
    """

    def __init__(self, W: Any, b: Any, V: Any, b2: Any, activation: str = "relu") -> None:
        self._activation = _normalize_activation(activation)
        W, b, V, b2 = (as_numeric_array(n, a) for n, a in zip(WEIGHT_NAMES, (W, b, V, b2)))
        self._check_shapes(W, b, V, b2)
        for name, arr in zip(WEIGHT_NAMES, (W, b, V, b2)):
            check_finite(name, arr)
            check_exact_float64(name, arr)
        # Private copies nobody can make writable (not even through flags.writeable): the weights of a TwoLayerNet
        # never change, which is what keeps the memoised fingerprint -- the key of every cached pair SDP value and
        # growth matrix -- true of the model for its whole life.
        self._W, self._b, self._V, self._b2 = (immutable_copy(a, np.float64) for a in (W, b, V, b2))
        self._fingerprint: str | None = None

    def __reduce__(self) -> tuple:
        # pickle and copy.deepcopy rebuild through the constructor: the copy's weights are frozen the same way
        # (unpickled arrays would be writable) and its fingerprint is computed afresh from them.
        return (type(self), (np.array(self._W), np.array(self._b), np.array(self._V), np.array(self._b2),
                             self._activation))

    @staticmethod
    def _check_shapes(W: np.ndarray, b: np.ndarray, V: np.ndarray, b2: np.ndarray) -> None:
        for name, arr, want, ndim in (("W", W, "(m, d)", 2), ("b", b, "(m,)", 1), ("V", V, "(k, m)", 2),
                                      ("b2", b2, "(k,)", 1)):
            if arr.ndim != ndim:
                raise ShapeError(f"{name} must have shape {want}; got a {arr.ndim}-D array of shape {arr.shape}")
        m, d = W.shape
        k = V.shape[0]
        if m < 1 or d < 1:
            raise ShapeError(f"W has shape {W.shape}; need m >= 1 hidden units and d >= 1 inputs")
        if b.shape != (m,):
            raise ShapeError(f"b has shape {b.shape} but W has shape {W.shape}: b must have shape ({m},)")
        if V.shape[1] != m:
            raise ShapeError(
                f"V has shape {V.shape} but W has shape {W.shape}: V must have m = {m} columns, shape (k, {m})"
            )
        if k < 2:
            raise ShapeError(f"V has shape {V.shape}: a classifier needs k >= 2 classes (rows of V)")
        if b2.shape != (k,):
            raise ShapeError(f"b2 has shape {b2.shape} but V has shape {V.shape}: b2 must have shape ({k},)")

    # ------------------------------------------------------------------------------------------- properties
    @property
    def W(self) -> np.ndarray:
        """First-layer weights, ``(m, d)`` float64, read-only for good (see ``immutable_copy``)."""
        return self._W

    @property
    def b(self) -> np.ndarray:
        """First-layer bias, ``(m,)`` float64, read-only for good (see ``immutable_copy``)."""
        return self._b

    @property
    def V(self) -> np.ndarray:
        """Second-layer weights, ``(k, m)`` float64, read-only for good (see ``immutable_copy``)."""
        return self._V

    @property
    def b2(self) -> np.ndarray:
        """Second-layer bias, ``(k,)`` float64, read-only for good (see ``immutable_copy``)."""
        return self._b2

    @property
    def d(self) -> int:
        """Input dimension."""
        return self._W.shape[1]

    @property
    def m(self) -> int:
        """Number of hidden units."""
        return self._W.shape[0]

    @property
    def k(self) -> int:
        """Number of classes."""
        return self._V.shape[0]

    @property
    def activation(self) -> str:
        """``"relu"``, ``"sigmoid"`` or ``"tanh"``."""
        return self._activation

    @property
    def lipschitz(self) -> float:
        """L with σ' ∈ [0, L]: 1 for relu and tanh, 0.25 for sigmoid (enters the certificate as εL/4)."""
        return ACTIVATIONS[self._activation]

    def __repr__(self) -> str:
        return f"TwoLayerNet(d={self.d}, m={self.m}, k={self.k}, activation={self._activation!r})"

    # ------------------------------------------------------------------------------------------- evaluation
    def _validated_inputs(self, X: Any) -> np.ndarray:
        arr = as_numeric_array("X", X)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.d:
            raise ShapeError(
                f"X must have shape (n, {self.d}) or ({self.d},) for this network (d = {self.d}); "
                f"got shape {arr.shape} (flatten images first, e.g. X.reshape(len(X), -1))"
            )
        check_finite("X", arr)
        check_exact_float64("X", arr)
        return np.asarray(arr, dtype=np.float64)

    def hidden(self, X: Any) -> np.ndarray:
        """Hidden activations ``σ(X Wᵀ + b)``: ``(n, m)`` for ``X`` of shape ``(n, d)``, ``(m,)`` for ``(d,)``.

        >>> net = TwoLayerNet([[1.0], [-1.0]], [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
        >>> net.hidden([2.0])
        array([2., 0.])
        """
        X = self._validated_inputs(X)
        return _ACTIVATION_FUNCTIONS[self._activation](X @ self._W.T + self._b)

    def forward(self, X: Any) -> np.ndarray:
        """Logits ``V σ(W x + b) + b2`` in float64: ``(n, k)`` for ``X`` of shape ``(n, d)``, ``(k,)`` for ``(d,)``.

        >>> net = TwoLayerNet([[1.0], [-1.0]], [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.5])
        >>> net.forward([2.0])
        array([2. , 0.5])
        """
        return self.hidden(X) @ self._V.T + self._b2

    def logits(self, X: Any) -> np.ndarray:
        """Same as :meth:`forward`."""
        return self.forward(X)

    def predict(self, X: Any) -> np.ndarray | int:
        """Predicted class (argmax of the logits): int64 array ``(n,)``, or an ``int`` for a single ``(d,)`` input.

        >>> net = TwoLayerNet([[1.0], [-1.0]], [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.5])
        >>> net.predict([2.0]), net.predict([[2.0], [-2.0]]).tolist()
        (0, [0, 1])
        """
        labels = np.argmax(self.forward(X), axis=-1)
        return int(labels) if labels.ndim == 0 else labels.astype(np.int64)

    def pair_difference(self, i: int, j: int) -> np.ndarray:
        """``v = V[i] − V[j]`` (float64, ``(m,)``, a fresh writable array): the margin direction of pair (i, j).

        >>> net = TwoLayerNet([[1.0]], [0.0], [[1.0], [3.0]], [0.0, 0.0])
        >>> net.pair_difference(1, 0)
        array([2.])
        """
        for name, idx in (("i", i), ("j", j)):
            # Python's negative indexing would silently pick another class; refuse it.
            if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)) or not 0 <= idx < self.k:
                raise SdpcertError(f"class index {name} = {idx!r} is not an integer in [0, {self.k})")
        if i == j:
            raise SdpcertError(f"pair_difference needs two different classes; got i = j = {i}")
        return self._V[i] - self._V[j]

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the format, activation, shapes and raw float64 bytes of W, b, V, b2.

        Equal fingerprints mean bit-identical models, so per-model SDP values can be cached under it. It is computed
        once: the weights cannot change afterwards (see ``__init__``).

        >>> net = TwoLayerNet([[1.0]], [0.0], [[1.0], [3.0]], [0.0, 0.0])
        >>> len(net.fingerprint())
        64
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"{MODEL_FORMAT_VERSION}|{self._activation}|".encode())
            for name, arr in zip(WEIGHT_NAMES, (self._W, self._b, self._V, self._b2)):
                h.update(f"{name}{arr.shape}|".encode())
                h.update(arr.astype("<f8", copy=False).tobytes())  # fixed byte order: same hash on any machine
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # ------------------------------------------------------------------------------------------- torch
    @classmethod
    def from_torch(cls, module: Any, activation: str | None = None) -> "TwoLayerNet":
        """Copy the weights of ``nn.Sequential([Flatten,] Linear, ReLU|Sigmoid|Tanh, Linear)``.

        The activation is read from the module; if ``activation`` is also given it must agree.
        A ``Linear`` without bias contributes a zero bias. Weights are copied to float64.

        >>> import torch
        >>> seq = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
        >>> TwoLayerNet.from_torch(seq)
        TwoLayerNet(d=4, m=3, k=2, activation='tanh')
        """
        import torch
        from torch import nn

        torch_activations = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
        expected = "nn.Sequential([nn.Flatten(),] nn.Linear, nn.ReLU | nn.Sigmoid | nn.Tanh, nn.Linear)"
        if not isinstance(module, nn.Sequential):
            raise SdpcertError(f"from_torch expects {expected}; got {type(module).__name__}")
        layers = list(module)
        if layers and type(layers[0]) is nn.Flatten:
            if (layers[0].start_dim, layers[0].end_dim) != (1, -1):
                raise SdpcertError(
                    f"from_torch accepts only nn.Flatten() with start_dim=1, end_dim=-1; "
                    f"got start_dim={layers[0].start_dim}, end_dim={layers[0].end_dim}"
                )
            layers = layers[1:]
        found = ", ".join(type(layer).__name__ for layer in module)
        if (
            len(layers) != 3
            or type(layers[0]) is not nn.Linear
            or type(layers[1]) not in torch_activations
            or type(layers[2]) is not nn.Linear
        ):
            raise SdpcertError(f"from_torch expects {expected}; got Sequential({found})")
        inferred = torch_activations[type(layers[1])]
        if activation is not None and _normalize_activation(activation) != inferred:
            raise SdpcertError(f"activation={activation!r} was given but the module uses {type(layers[1]).__name__}")

        def to_numpy(tensor: Any, size: int) -> np.ndarray:
            if tensor is None:
                return np.zeros(size)
            return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()

        first, second = layers[0], layers[2]
        return cls(
            to_numpy(first.weight, 0),
            to_numpy(first.bias, first.out_features),
            to_numpy(second.weight, 0),
            to_numpy(second.bias, second.out_features),
            activation=inferred,
        )

    def to_torch(self, dtype: Any = None) -> Any:
        """A new ``nn.Sequential(Linear(d, m), act, Linear(m, k))`` holding copies of the weights.

        ``dtype`` defaults to ``torch.float32``; pass ``torch.float64`` to reproduce :meth:`forward` exactly.

        >>> import torch
        >>> net = TwoLayerNet([[1.0]], [0.0], [[1.0], [3.0]], [0.0, 0.0])
        >>> net.to_torch(torch.float64)(torch.ones(1, 1, dtype=torch.float64)).tolist()
        [[1.0, 3.0]]
        """
        import torch
        from torch import nn

        dtype = torch.float32 if dtype is None else dtype
        activation_module = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[self._activation]()
        first = nn.Linear(self.d, self.m, dtype=dtype)
        second = nn.Linear(self.m, self.k, dtype=dtype)
        with torch.no_grad():
            # .copy(): torch.from_numpy warns on read-only arrays, and the module must own its memory anyway
            for param, arr in ((first.weight, self._W), (first.bias, self._b), (second.weight, self._V),
                               (second.bias, self._b2)):
                param.copy_(torch.from_numpy(arr.copy()))
        return nn.Sequential(first, activation_module, second)

    # ------------------------------------------------------------------------------------------- ONNX
    @classmethod
    def from_onnx(cls, source: Any) -> "TwoLayerNet":
        """Read an ONNX graph ``[Flatten] -> Gemm | MatMul+Add -> Relu | Tanh | Sigmoid -> Gemm | MatMul+Add`` (a
        path, bytes or ``onnx.ModelProto``); anything else is a ``ModelFileError`` naming the node. Needs the
        ``onnx`` extra. See :mod:`sdpcert.model.onnx`."""
        from .onnx import from_onnx

        return from_onnx(source)

    def to_onnx(self, path: str | os.PathLike | None = None, dtype: Any = None) -> Any:
        """The ``onnx.ModelProto`` of this network (``Gemm -> act -> Gemm``, input (N, d), output (N, k)), written
        to ``path`` when given; float32 when every weight is exactly a float32, else float64 (``dtype`` forces one).
        Needs the ``onnx`` extra. See :mod:`sdpcert.model.onnx`."""
        from .onnx import to_onnx

        return to_onnx(self, path, dtype=dtype)

    # ------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike, compact: bool = False) -> Path:
        """Write the model to ``path`` as an uncompressed ``.npz`` (no pickles); returns the path.

        The exact name is kept (no ``.npz`` is appended) and the write is atomic (temp file + rename).
        ``compact=True`` (for models shipped as package data) stores the weights as float32 in a compressed archive,
        half the size; it is refused unless every weight is exactly a float32 (e.g. a net trained in float32), so
        the file loads back to the identical network with the same fingerprint.

        >>> import tempfile, pathlib
        >>> net = TwoLayerNet([[1.0]], [0.0], [[1.0], [3.0]], [0.0, 0.0])
        >>> p = net.save(pathlib.Path(tempfile.mkdtemp()) / "net.npz")
        >>> TwoLayerNet.load(p).fingerprint() == net.fingerprint()
        True
        """
        return save_model(self, path, compact=compact)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TwoLayerNet":
        """Read a model written by :meth:`save`. Never unpickles; every problem is a ``ModelFileError``.

        Refused: a missing file, something that is not an .npz archive, a truncated or corrupt archive,
        missing or unknown arrays, another format version, object (pickled) arrays, inconsistent shapes, NaN/inf
        weights, weights that float64 cannot represent exactly.
        """
        path = Path(path)
        arrays, activation = read_model_file(path)
        try:
            return cls(*(arrays[name] for name in WEIGHT_NAMES), activation=activation)
        except SdpcertError as exc:
            raise ModelFileError(f"model file {path} holds an invalid model: {exc}") from exc
