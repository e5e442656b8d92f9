"""ONNX models in and out: the graphs ``[Flatten] -> Gemm | MatMul+Add -> Relu | Tanh | Sigmoid -> Gemm |
MatMul+Add`` that are a :class:`~sdpcert.model.TwoLayerNet`, and nothing else.

:func:`from_onnx` reads such a graph (a path, bytes or an ``onnx.ModelProto``): weights from its initializers
(float32 or float64, stored exactly as float64), ``Gemm`` with ``transB`` 0 or 1 (``alpha = beta = 1``,
``transA = 0``; without its bias input the bias is 0), ``MatMul`` followed by ``Add`` with the bias on either side,
``Flatten`` (axis 1) only first. Anything else -- another op, a weight that is not an initializer, shapes that do not
chain, a second input or output -- is a one-line ``ModelFileError`` naming the node (its position, op and name).
:func:`to_onnx` writes ``Gemm(transB=1) -> act -> Gemm(transB=1)`` with a dynamic batch dimension, in float32 when
every weight is exactly a float32 (a net trained in float32), else float64; ``dtype`` forces one (float32 is refused
for weights float32 cannot hold exactly: the file would hold another network).

``onnx`` is an optional dependency (``pip install 'sdpcert[onnx]'``), imported only here, when used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelFileError, SdpcertError

__all__ = ["from_onnx", "to_onnx", "ACTIVATION_OPS", "OPSET"]

ACTIVATION_OPS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
OPSET = 13  # Gemm, MatMul, Add, Flatten, Relu, Tanh, Sigmoid all have their current semantics from opset 13 on
_IR_VERSION = 7  # what opset 13 needs; read by every onnxruntime since 1.6


def _onnx() -> Any:
    try:
        import onnx
        from onnx import numpy_helper  # noqa: F401 - imported for its side effect on onnx.numpy_helper
    except ImportError as exc:
        raise SdpcertError("ONNX models need the onnx package: pip install 'sdpcert[onnx]' (or pip install onnx)"
                           ) from exc
    return onnx


def _load(onnx: Any, source: Any) -> tuple[Any, str]:
    if isinstance(source, onnx.ModelProto):
        return source, "<ModelProto>"
    if isinstance(source, (bytes, bytearray)):
        what, load = "<bytes>", lambda: onnx.load_model_from_string(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such ONNX file")
        what, load = str(path), lambda: onnx.load_model(str(path), load_external_data=False)
    else:
        raise SdpcertError(f"from_onnx takes a path, bytes or an onnx.ModelProto; got {type(source).__name__}")
    try:
        model = load()
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ModelFileError(f"{what}: not a readable ONNX model ({type(exc).__name__})") from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{what}: not an ONNX model with a graph (no nodes)")
    return model, what


def from_onnx(source: Any) -> Any:
    """The :class:`~sdpcert.model.TwoLayerNet` of an ONNX graph of the supported form (module docstring)."""
    from .network import TwoLayerNet

    onnx = _onnx()
    model, what = _load(onnx, source)
    graph = model.graph
    inits = {}
    for init in graph.initializer:
        try:
            arr = onnx.numpy_helper.to_array(init)
        except Exception as exc:
            raise ModelFileError(f"{what}: initializer {init.name!r} cannot be read ({type(exc).__name__}; "
                                 f"external data is not supported)") from exc
        if arr.dtype not in (np.float32, np.float64):
            raise ModelFileError(f"{what}: initializer {init.name!r} is {arr.dtype}; weights must be float32 or "
                                 f"float64")
        inits[init.name] = arr
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelFileError(f"{what}: the graph must have one input and one output; got {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}) and {len(graph.output)} outputs")
    nodes = list(graph.node)
    ops = [n.op_type for n in nodes]

    def where(pos: int) -> str:
        node = nodes[pos]
        label = f" {node.name!r}" if node.name else ""
        return f"{what}: node #{pos} ({node.op_type}{label})"

    def unsupported(pos: int, expected: str) -> ModelFileError:
        return ModelFileError(f"{where(pos)} is not supported here: expected {expected}; sdpcert reads [Flatten] -> "
                              f"Gemm | MatMul+Add -> Relu | Tanh | Sigmoid -> Gemm | MatMul+Add (graph: "
                              f"{' -> '.join(ops)})")

    def attrs(node: Any) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def weight(pos: int, name: str) -> np.ndarray:
        if name not in inits:
            raise ModelFileError(f"{where(pos)}: input {name!r} is not an initializer (weights must be stored in "
                                 f"the graph's initializers)")
        return inits[name]

    def data_input(pos: int, node: Any, current: str, slots: tuple[int, ...]) -> int:
        """The index in node.input of the data flowing from the previous node (the other slots are weights)."""
        hits = [s for s in slots if s < len(node.input) and node.input[s] == current]
        if not hits:
            raise ModelFileError(f"{where(pos)} does not take {current!r}, the output of the previous step")
        return hits[0]

    pos, current = 0, inputs[0].name
    if pos < len(nodes) and nodes[pos].op_type == "Flatten":
        axis = attrs(nodes[pos]).get("axis", 1)
        if axis != 1:
            raise ModelFileError(f"{where(pos)}: only Flatten with axis=1 is supported; got axis={axis}")
        data_input(pos, nodes[pos], current, (0,))
        current, pos = nodes[pos].output[0], pos + 1

    def dense(pos: int, current: str, layer: str) -> tuple[np.ndarray, np.ndarray, str, int]:
        """(weight (out, in), bias (out,), output name, next position) of a Gemm or MatMul+Add at ``pos``."""
        if pos >= len(nodes):
            raise ModelFileError(f"{what}: the graph ends before the {layer} layer (Gemm or MatMul+Add)")
        node = nodes[pos]
        if node.op_type == "Gemm":
            a = attrs(node)
            if a.get("transA", 0) != 0 or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ModelFileError(f"{where(pos)}: only Gemm with transA=0, alpha=1, beta=1 is supported; got "
                                     f"transA={a.get('transA', 0)}, alpha={a.get('alpha', 1.0)}, "
                                     f"beta={a.get('beta', 1.0)}")
            data_input(pos, node, current, (0,))
            B = weight(pos, node.input[1])
            if B.ndim != 2:
                raise ModelFileError(f"{where(pos)}: weight {node.input[1]!r} has shape {B.shape}; expected 2-D")
            Wt = B if a.get("transB", 0) == 1 else B.T
            if len(node.input) > 2 and node.input[2]:
                bias = weight(pos, node.input[2])
            else:
                bias = np.zeros(Wt.shape[0], dtype=B.dtype)
            return Wt, _bias(bias, Wt.shape[0], where(pos)), node.output[0], pos + 1
        if node.op_type == "MatMul":
            data_input(pos, node, current, (0,))
            B = weight(pos, node.input[1])
            if B.ndim != 2:
                raise ModelFileError(f"{where(pos)}: weight {node.input[1]!r} has shape {B.shape}; expected 2-D")
            if pos + 1 >= len(nodes) or nodes[pos + 1].op_type != "Add":
                nxt = f"node #{pos + 1} ({nodes[pos + 1].op_type})" if pos + 1 < len(nodes) else "the end"
                raise ModelFileError(f"{where(pos)}: a MatMul must be followed by its bias Add; found {nxt}")
            add = nodes[pos + 1]
            slot = data_input(pos + 1, add, node.output[0], (0, 1))
            bias = weight(pos + 1, add.input[1 - slot])
            return B.T, _bias(bias, B.shape[1], where(pos + 1)), add.output[0], pos + 2
        raise unsupported(pos, f"the {layer} layer (Gemm or MatMul+Add)")

    W, b, current, pos = dense(pos, current, "first")
    if pos >= len(nodes) or nodes[pos].op_type not in ACTIVATION_OPS:
        if pos >= len(nodes):
            raise ModelFileError(f"{what}: the graph ends before the activation (Relu, Tanh or Sigmoid)")
        raise unsupported(pos, "the activation (Relu, Tanh or Sigmoid)")
    activation = ACTIVATION_OPS[nodes[pos].op_type]
    data_input(pos, nodes[pos], current, (0,))
    current, pos = nodes[pos].output[0], pos + 1
    V, b2, current, pos = dense(pos, current, "second")
    if pos < len(nodes):
        raise unsupported(pos, "the end of the graph after the second layer")
    if current != graph.output[0].name:
        raise ModelFileError(f"{what}: the graph's output {graph.output[0].name!r} is not the last node's output "
                             f"{current!r}")
    if V.shape[1] != W.shape[0]:
        raise ModelFileError(f"{what}: the layers do not chain: the first has {W.shape[0]} outputs, the second "
                             f"takes {V.shape[1]} inputs")
    _check_input_shape(inputs[0], W.shape[1], what)
    try:
        return TwoLayerNet(W.astype(np.float64), b.astype(np.float64), V.astype(np.float64), b2.astype(np.float64),
                           activation=activation)
    except SdpcertError as exc:
        raise ModelFileError(f"{what}: the graph's weights are not a valid network: {exc}") from exc


def _bias(bias: np.ndarray, size: int, where: str) -> np.ndarray:
    if bias.size != size or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
        raise ModelFileError(f"{where}: bias has shape {bias.shape}; expected ({size},) for a layer of {size} outputs")
    return bias.reshape(size)


def _check_input_shape(value_info: Any, d: int, what: str) -> None:
    """The declared input shape, where its dimensions are numbers, must hold d features per example."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    if len(dims) < 2:
        raise ModelFileError(f"{what}: input {value_info.name!r} has {len(dims)} dimensions; expected (batch, ...)")
    features = dims[1:]
    if all(f is not None for f in features) and int(np.prod(features)) != d:
        raise ModelFileError(f"{what}: input {value_info.name!r} has shape {tuple(dims)}: {int(np.prod(features))} "
                             f"features per example, but the first layer takes {d}")


def to_onnx(net: Any, path: Optional[str | os.PathLike] = None, dtype: Any = None) -> Any:
    """The ``onnx.ModelProto`` of ``net`` (input ``input`` (N, d), output ``logits`` (N, k)), also written to
    ``path`` when given. dtype: None (float32 when every weight is exactly a float32, else float64), np.float32
    (refused unless exact) or np.float64."""
    from .network import TwoLayerNet

    onnx = _onnx()
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"to_onnx needs a TwoLayerNet; got {type(net).__name__}")
    weights = {"W": net.W, "b": net.b, "V": net.V, "b2": net.b2}
    exact32 = all(np.array_equal(a.astype(np.float32).astype(np.float64), a) for a in weights.values())
    if dtype is None:
        dtype = np.float32 if exact32 else np.float64
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise SdpcertError(f"dtype must be float32 or float64; got {dtype}")
    if dtype == np.float32 and not exact32:
        raise SdpcertError("the weights are not all exactly float32: a float32 ONNX file would hold another network; "
                           "use dtype=np.float64 (or the default)")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    inits = [numpy_helper.from_array(np.ascontiguousarray(a.astype(dtype)), name) for name, a in weights.items()]
    act = {v: k for k, v in ACTIVATION_OPS.items()}[net.activation]
    nodes = [helper.make_node("Gemm", ["input", "W", "b"], ["hidden_pre"], name="layer1", transB=1),
             helper.make_node(act, ["hidden_pre"], ["hidden"], name="activation"),
             helper.make_node("Gemm", ["hidden", "V", "b2"], ["logits"], name="layer2", transB=1)]
    graph = helper.make_graph(nodes, "sdpcert_two_layer_net",
                              [helper.make_tensor_value_info("input", elem, ["N", net.d])],
                              [helper.make_tensor_value_info("logits", elem, ["N", net.k])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sdpcert",
                              ir_version=_IR_VERSION)
    onnx.checker.check_model(model)
    if path is not None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, path)
    return model
