"""TwoLayerNet.from_onnx / to_onnx (sdpcert.model.onnx), checked against onnxruntime."""

from __future__ import annotations

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sdpcert import TwoLayerNet  # noqa: E402
from sdpcert.errors import ModelFileError, SdpcertError  # noqa: E402
from sdpcert.model.onnx import from_onnx, to_onnx  # noqa: E402


def run(model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


def make_net(d=6, m=5, k=3, activation="relu", seed=0, float32=True):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k)]
    if float32:
        arrays = [a.astype(np.float32) for a in arrays]
    return TwoLayerNet(*arrays, activation=activation)


def graph(nodes, inits, in_shape=("N", 6), out_shape=("N", 3), elem=TensorProto.FLOAT, extra_inputs=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, list(in_shape)), *extra_inputs],
                          [helper.make_tensor_value_info("y", elem, list(out_shape))],
                          initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("float32", [True, False])
def test_round_trip_through_onnxruntime(tmp_path, activation, float32):
    net = make_net(activation=activation, float32=float32)
    path = tmp_path / "net.onnx"
    model = net.to_onnx(path)
    dtype = np.float32 if float32 else np.float64
    assert model.graph.initializer[0].data_type == (TensorProto.FLOAT if float32 else TensorProto.DOUBLE)
    X = np.random.default_rng(1).uniform(0, 1, size=(50, 6)).astype(dtype)
    np.testing.assert_allclose(run(model, X), net.logits(X), rtol=0, atol=1e-6 if float32 else 1e-12)
    back = TwoLayerNet.from_onnx(path)
    assert back.fingerprint() == net.fingerprint() and back.activation == activation
    assert from_onnx(model.SerializeToString()).fingerprint() == net.fingerprint()


def test_to_onnx_dtype_choice(tmp_path):
    net64 = make_net(float32=False)
    with pytest.raises(SdpcertError, match="not all exactly float32") as exc:
        net64.to_onnx(dtype=np.float32)
    assert "\n" not in str(exc.value)
    net32 = make_net()
    assert net32.to_onnx(dtype=np.float64).graph.initializer[0].data_type == TensorProto.DOUBLE
    with pytest.raises(SdpcertError, match="float32 or float64"):
        net32.to_onnx(dtype=np.float16)
    with pytest.raises(SdpcertError, match="needs a TwoLayerNet"):
        to_onnx("net.npz")


@pytest.mark.parametrize("layout", ["gemm_transB0", "matmul_add", "add_bias_first", "flatten", "gemm_no_bias"])
def test_hand_built_graphs_mean_what_onnxruntime_computes(layout):
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    V, b2 = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    in_shape = ("N", 6)
    first = [helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transB=1)]
    inits = {"W": W, "b": b, "V": V, "b2": b2}
    if layout == "gemm_transB0":
        inits["W"] = W.T.copy()
        first = [helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transB=0)]
    elif layout in ("matmul_add", "add_bias_first"):
        inits["W"] = W.T.copy()
        add_inputs = ["mm", "b"] if layout == "matmul_add" else ["b", "mm"]
        first = [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Add", add_inputs, ["h0"])]
    elif layout == "flatten":
        in_shape = ("N", 1, 2, 3)
        first = [helper.make_node("Flatten", ["x"], ["xf"], axis=1),
                 helper.make_node("Gemm", ["xf", "W", "b"], ["h0"], transB=1)]
    elif layout == "gemm_no_bias":
        first = [helper.make_node("Gemm", ["x", "W"], ["h0"], transB=1)]
        b = np.zeros_like(b)
    nodes = first + [helper.make_node("Sigmoid", ["h0"], ["h"]),
                     helper.make_node("MatMul", ["h", "Vt"], ["z"]), helper.make_node("Add", ["z", "b2"], ["y"])]
    inits["Vt"] = V.T.copy()
    del inits["V"]
    model = graph(nodes, inits, in_shape)
    net = from_onnx(model)
    assert net.activation == "sigmoid"
    np.testing.assert_array_equal(net.W, W.astype(np.float64))
    np.testing.assert_array_equal(net.b, b.astype(np.float64))
    X = rng.uniform(size=(9, *in_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(run(model, X), net.logits(X.reshape(9, -1)), rtol=0, atol=1e-6)


def _two_layer(first=None, act="Relu", second=None, inits=None, **kw):
    rng = np.random.default_rng(3)
    base = {"W": rng.normal(size=(5, 6)).astype(np.float32), "b": np.zeros(5, np.float32),
            "V": rng.normal(size=(3, 5)).astype(np.float32), "b2": np.zeros(3, np.float32)}
    base.update(inits or {})
    base = {k: v for k, v in base.items() if v is not None}
    nodes = [first or helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transB=1, name="fc1"),
             helper.make_node(act, ["h0"], ["h"], name="act"),
             second or helper.make_node("Gemm", ["h", "V", "b2"], ["y"], transB=1, name="fc2")]
    return graph(nodes, base, **kw)


@pytest.mark.parametrize("model, match", [
    (lambda: _two_layer(act="LeakyRelu"), r"node #1 \(LeakyRelu 'act'\) is not supported here: expected the "
                                          r"activation"),
    (lambda: _two_layer(first=helper.make_node("Conv", ["x", "W"], ["h0"], name="c")),
     r"node #0 \(Conv 'c'\) is not supported here: expected the first layer"),
    (lambda: graph([helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transB=1),
                    helper.make_node("Relu", ["h0"], ["h"]),
                    helper.make_node("Gemm", ["h", "V", "b2"], ["z"], transB=1),
                    helper.make_node("Softmax", ["z"], ["y"])],
                   {"W": np.ones((5, 6), np.float32), "b": np.zeros(5, np.float32),
                    "V": np.ones((3, 5), np.float32), "b2": np.zeros(3, np.float32)}),
     r"node #3 \(Softmax\) is not supported here: expected the end of the graph"),
    (lambda: _two_layer(inits={"b2": None}), r"node #2 \(Gemm 'fc2'\): input 'b2' is not an initializer"),
    (lambda: _two_layer(inits={"b": np.zeros(4, np.float32)}), r"bias has shape \(4,\); expected \(5,\)"),
    (lambda: _two_layer(inits={"V": np.ones((3, 4), np.float32)}), "the layers do not chain"),
    (lambda: _two_layer(in_shape=("N", 7)), r"7 features per example, but the first layer takes 6"),
    (lambda: _two_layer(inits={"W": np.ones((5, 6), np.int64)}), "initializer 'W' is int64"),
    (lambda: _two_layer(first=helper.make_node("Gemm", ["x", "W", "b"], ["h0"], transA=1, name="fc1")),
     "only Gemm with transA=0"),
    (lambda: _two_layer(first=helper.make_node("Gemm", ["x", "W", "b"], ["h0"], alpha=2.0, transB=1)),
     "alpha=2.0"),
    (lambda: _two_layer(first=helper.make_node("MatMul", ["x", "W"], ["h0"], name="mm")),
     r"a MatMul must be followed by its bias Add; found node #1 \(Relu\)"),
    (lambda: _two_layer(first=helper.make_node("Gemm", ["other", "W", "b"], ["h0"], transB=1)),
     "does not take 'x'"),
    (lambda: _two_layer(extra_inputs=[helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 6])]),
     "one input and one output; got 2 inputs"),
    (lambda: graph([helper.make_node("Flatten", ["x"], ["f"], axis=2)], {}), "only Flatten with axis=1"),
    (lambda: graph([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)],
                   {"W": np.ones((5, 6), np.float32), "b": np.zeros(5, np.float32)}),
     "the graph ends before the activation"),
])
def test_bad_graphs_are_one_line_errors(model, match):
    with pytest.raises(ModelFileError, match=match) as exc:
        from_onnx(model())
    assert "\n" not in str(exc.value)


def test_bad_files(tmp_path, monkeypatch):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff")
    with pytest.raises(ModelFileError, match="bad.onnx") as exc:
        TwoLayerNet.from_onnx(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(ModelFileError, match="no such ONNX file"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(SdpcertError, match="path, bytes or an onnx.ModelProto"):
        from_onnx(3)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with pytest.raises(SdpcertError, match=r"pip install 'sdpcert\[onnx\]'"):
        from_onnx(bad)
    with pytest.raises(SdpcertError, match=r"pip install 'sdpcert\[onnx\]'"):
        make_net().to_onnx()


def test_a_graph_exported_by_torch(tmp_path):
    """torch.onnx.export's (legacy exporter's) Flatten -> Gemm -> Tanh -> Gemm reads back as from_torch's network."""
    import warnings

    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    path = tmp_path / "torch.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (torch.zeros(2, 3, 4),), str(path), dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "N"}})
    except Exception as exc:  # pragma: no cover - depends on the torch version
        pytest.skip(f"torch.onnx.export (legacy exporter) unavailable: {type(exc).__name__}")
    net = TwoLayerNet.from_onnx(path)
    assert net.fingerprint() == TwoLayerNet.from_torch(model).fingerprint()
    X = np.random.default_rng(0).uniform(size=(6, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(onnx.load(str(path)), X), net.logits(X.reshape(6, -1)), rtol=0, atol=1e-6)
