"""TwoLayerNet: forward pass against torch, file round trips, fingerprints, and refusal of bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from sdpcert.errors import ModelFileError, NonFiniteError, SdpcertError, ShapeError
from sdpcert.model import MODEL_FORMAT_VERSION, TwoLayerNet

ACTIVATION_MODULES = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def seeded_torch_mlp(activation: str, d: int = 12, m: int = 9, k: int = 4, flatten: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Linear(d, m, dtype=torch.float64), ACTIVATION_MODULES[activation](),
              nn.Linear(m, k, dtype=torch.float64)]
    with torch.no_grad():  # larger weights than the default init, so every activation sees its nonlinear range
        for layer in (layers[0], layers[2]):
            layer.weight.mul_(4.0)
    return nn.Sequential(nn.Flatten(), *layers) if flatten else nn.Sequential(*layers)


def valid_weights(d: int = 4, m: int = 3, k: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"W": rng.normal(size=(m, d)), "b": rng.normal(size=m), "V": rng.normal(size=(k, m)),
            "b2": rng.normal(size=k)}


# --------------------------------------------------------------------------------------------- forward pass
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_forward_matches_torch_sequential(activation):
    module = seeded_torch_mlp(activation)
    net = TwoLayerNet.from_torch(module)
    assert net.activation == activation
    assert (net.d, net.m, net.k) == (12, 9, 4)

    X = np.random.default_rng(2).normal(size=(16, 12))
    expected = module(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(net.forward(X), expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(net.logits(X), net.forward(X))
    np.testing.assert_array_equal(net.predict(X), expected.argmax(axis=1))
    hidden_expected = module[2](module[1](torch.from_numpy(X))).detach().numpy()
    np.testing.assert_allclose(net.hidden(X), hidden_expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_to_torch_round_trip_is_bit_exact(activation, random_net):
    net = random_net(activation=activation)
    module = net.to_torch(torch.float64)
    assert [type(layer) for layer in module] == [nn.Linear, ACTIVATION_MODULES[activation], nn.Linear]
    assert TwoLayerNet.from_torch(module).fingerprint() == net.fingerprint()

    X = np.random.default_rng(3).normal(size=(5, net.d))
    np.testing.assert_allclose(module(torch.from_numpy(X)).detach().numpy(), net.forward(X), rtol=1e-13, atol=1e-13)
    module32 = net.to_torch()
    assert module32[0].weight.dtype == torch.float32
    np.testing.assert_allclose(module32(torch.from_numpy(X).float()).detach().numpy(), net.forward(X),
                               rtol=1e-5, atol=1e-5)


def test_single_example_has_matching_rank(random_net):
    net = random_net()
    X = np.random.default_rng(4).normal(size=(3, net.d))
    assert net.forward(X[0]).shape == (net.k,)
    assert net.hidden(X[0]).shape == (net.m,)
    np.testing.assert_allclose(net.forward(X[0]), net.forward(X)[0], rtol=1e-15)
    assert isinstance(net.predict(X[0]), int)
    assert net.predict(X[0]) == net.predict(X)[0]


def test_relu_forward_by_hand():
    # f(x) = V relu(W x + b) + b2 with numbers small enough to check in one's head
    net = TwoLayerNet([[1.0, 2.0], [-1.0, 0.0]], [0.5, 0.0], [[1.0, 1.0], [2.0, -1.0]], [0.0, 1.0])
    np.testing.assert_array_equal(net.hidden([1.0, 1.0]), [3.5, 0.0])
    np.testing.assert_array_equal(net.forward([1.0, 1.0]), [3.5, 8.0])


def test_properties_and_pair_difference(random_net):
    assert random_net(activation="relu").lipschitz == 1.0
    assert random_net(activation="tanh").lipschitz == 1.0
    assert random_net(activation="sigmoid").lipschitz == 0.25
    net = random_net(d=7, m=5, k=3)
    assert repr(net) == "TwoLayerNet(d=7, m=5, k=3, activation='relu')"
    v = net.pair_difference(2, 0)
    assert v.dtype == np.float64 and v.shape == (5,)
    np.testing.assert_array_equal(v, net.V[2] - net.V[0])
    for i, j in [(0, 3), (-1, 0), (1, 1)]:
        with pytest.raises(SdpcertError, match="class"):
            net.pair_difference(i, j)


def test_weights_are_private_read_only_float64_copies():
    weights = valid_weights()
    weights["W"] = weights["W"].astype(np.float32)
    net = TwoLayerNet(**weights)
    weights["V"][0, 0] += 1.0  # editing the caller's array must not change the model
    assert net.V[0, 0] != weights["V"][0, 0]
    for arr in (net.W, net.b, net.V, net.b2):
        assert arr.dtype == np.float64 and arr.flags.c_contiguous and not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        net.W[0, 0] = 0.0


# --------------------------------------------------------------------------------------------- fingerprint
def test_fingerprint_tracks_every_bit(random_net):
    net = random_net()
    same = TwoLayerNet(net.W, net.b, net.V, net.b2, net.activation)
    assert same.fingerprint() == net.fingerprint()

    W = net.W.copy()
    W[1, 2] = np.nextafter(W[1, 2], np.inf)  # one ulp
    assert TwoLayerNet(W, net.b, net.V, net.b2).fingerprint() != net.fingerprint()
    b2 = net.b2 + 1.0  # a bias change too: the cache key is the whole model, not only what the SDP sees
    assert TwoLayerNet(net.W, net.b, net.V, b2).fingerprint() != net.fingerprint()
    assert TwoLayerNet(net.W, net.b, net.V, net.b2, "tanh").fingerprint() != net.fingerprint()


# --------------------------------------------------------------------------------------------- bad input
def with_changes(**changes):
    weights = valid_weights()
    weights.update(changes)
    return weights


def array_with(value, shape, index):
    arr = np.ones(shape)
    arr[index] = value
    return arr


@pytest.mark.parametrize(
    "weights, error, message",
    [
        (with_changes(W=array_with(np.nan, (3, 4), (0, 1))), NonFiniteError, r"W contains 1 non-finite value"),
        (with_changes(W=np.full((3, 4), np.nan)), NonFiniteError, r"W contains 12 non-finite values \(NaN/inf\)"),
        (with_changes(V=array_with(np.inf, (2, 3), (1, 2))), NonFiniteError, r"V contains 1 non-finite.*\(1, 2\)"),
        (with_changes(b=np.array([0.0, -np.inf, 0.0])), NonFiniteError, r"^b contains 1 non-finite"),
        (with_changes(b2=np.array([np.nan, 0.0])), NonFiniteError, r"b2 contains 1 non-finite"),
        (with_changes(W=np.ones(4)), ShapeError, r"W must have shape \(m, d\); got a 1-D array of shape \(4,\)"),
        (with_changes(b=np.ones(4)), ShapeError, r"b has shape \(4,\) but W has shape \(3, 4\)"),
        (with_changes(V=np.ones((2, 5))), ShapeError, r"V has shape \(2, 5\) but W has shape \(3, 4\)"),
        (with_changes(b2=np.ones(3)), ShapeError, r"b2 has shape \(3,\) but V has shape \(2, 3\)"),
        (with_changes(V=np.ones((1, 3)), b2=np.ones(1)), ShapeError, r"k >= 2"),
        (with_changes(W=np.ones((0, 4)), b=np.ones(0), V=np.ones((2, 0))), ShapeError, r"m >= 1"),
        (with_changes(W=np.ones((3, 4), dtype=bool)), SdpcertError, r"W must hold real numbers.*bool"),
        (with_changes(V=np.ones((2, 3), dtype=complex)), SdpcertError, r"V must hold real numbers.*complex"),
        (with_changes(b=np.array([1.0, None, 2.0], dtype=object)), SdpcertError, r"b must hold real numbers.*object"),
    ],
    ids=["nan-W", "all-nan-W", "inf-V", "inf-b", "nan-b2", "W-1d", "b-size", "V-cols", "b2-size", "k1", "m0",
         "bool-W", "complex-V", "object-b"],
)
def test_bad_weights_are_named_errors(weights, error, message):
    with pytest.raises(error, match=message):
        TwoLayerNet(**weights)


def test_unknown_activation_lists_valid_ones():
    with pytest.raises(SdpcertError, match=r"unknown activation 'softplus'.*\['relu', 'sigmoid', 'tanh'\]"):
        TwoLayerNet(**valid_weights(), activation="softplus")


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.ones((2, 5)), ShapeError, r"X must have shape \(n, 4\) or \(4,\).*got shape \(2, 5\)"),
        (np.ones((2, 2, 2)), ShapeError, r"got shape \(2, 2, 2\)"),
        (np.ones(3), ShapeError, r"got shape \(3,\)"),
        (array_with(np.nan, (3, 4), (2, 0)), NonFiniteError, r"X contains 1 non-finite value.*\(2, 0\)"),
        (np.array(["a", "b", "c", "d"]), SdpcertError, r"X must hold real numbers"),
    ],
    ids=["wrong-d", "3d", "wrong-d-vector", "nan", "strings"],
)
def test_bad_inputs_are_named_errors(X, error, message):
    net = TwoLayerNet(**valid_weights())
    for method in (net.forward, net.hidden, net.predict):
        with pytest.raises(error, match=message):
            method(X)


def test_from_torch_refuses_other_architectures():
    deep = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(SdpcertError, match=r"got Sequential\(Linear, ReLU, Linear, ReLU, Linear\)"):
        TwoLayerNet.from_torch(deep)
    with pytest.raises(SdpcertError, match=r"LeakyReLU"):
        TwoLayerNet.from_torch(nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(), nn.Linear(3, 2)))
    with pytest.raises(SdpcertError, match=r"got Linear"):
        TwoLayerNet.from_torch(nn.Linear(4, 2))
    with pytest.raises(SdpcertError, match=r"activation='tanh' was given but the module uses ReLU"):
        TwoLayerNet.from_torch(seeded_torch_mlp("relu", flatten=False), activation="tanh")


def test_from_torch_refuses_nan_weights():
    module = seeded_torch_mlp("relu")
    with torch.no_grad():
        module[3].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="V contains 1 non-finite"):
        TwoLayerNet.from_torch(module)


# --------------------------------------------------------------------------------------------- files
def test_save_load_round_trip_is_bit_exact(tmp_path, random_net):
    net = random_net(d=11, m=7, k=5, activation="sigmoid")
    path = net.save(tmp_path / "model.sdpcert")  # any name is kept as given
    assert path == tmp_path / "model.sdpcert" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.sdpcert"]  # no temp file left behind
    loaded = TwoLayerNet.load(path)
    assert loaded.activation == "sigmoid"
    for name in ("W", "b", "V", "b2"):
        assert getattr(loaded, name).tobytes() == getattr(net, name).tobytes()
    assert loaded.fingerprint() == net.fingerprint()


def write_npz(path, **arrays):
    """A model-like .npz with the given arrays (np.savez allows pickles by default)."""
    np.savez(path, **arrays)
    return path


def model_arrays(**changes):
    arrays = {**valid_weights(), "activation": np.array("relu"), "format_version": np.array(MODEL_FORMAT_VERSION)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def test_sanity_the_helper_writes_a_loadable_model(tmp_path):
    # the corrupt-file tests below change one thing each in this otherwise valid file
    assert TwoLayerNet.load(write_npz(tmp_path / "ok.npz", **model_arrays())).d == 4


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"V": None}, r"lacks array\(s\) \['V'\]"),
        ({"format_version": np.array("sdpcert-twolayer-0")}, r"format version 'sdpcert-twolayer-0'"),
        ({"format_version": np.array(1)}, r"'format_version' must be a 0-d unicode string"),
        ({"activation": np.array("gelu")}, r"invalid model: unknown activation 'gelu'"),
        ({"W": np.array([[1.0, 2.0]], dtype=object)}, r"array 'W' holds pickled Python objects"),
        ({"b": np.ones(5)}, r"invalid model: b has shape \(5,\) but W has shape \(3, 4\)"),
        ({"V": np.full((2, 3), np.inf)}, r"invalid model: V contains 6 non-finite values"),
    ],
    ids=["missing-key", "wrong-version", "numeric-version", "bad-activation", "object-array", "shapes", "inf"],
)
def test_bad_model_files_are_model_file_errors(tmp_path, changes, message):
    path = write_npz(tmp_path / "bad.npz", **model_arrays(**changes))
    with pytest.raises(ModelFileError, match=message) as info:
        TwoLayerNet.load(path)
    assert str(path) in str(info.value)


def test_random_bytes_are_not_a_model(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(5).bytes(4096))
    with pytest.raises(ModelFileError, match=r"is not an \.npz \(zip\) archive"):
        TwoLayerNet.load(path)


def test_pickle_file_is_refused(tmp_path):
    import pickle

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(valid_weights()))
    with pytest.raises(ModelFileError, match="not an .npz"):
        TwoLayerNet.load(path)


@pytest.mark.parametrize("keep_fraction", [0.5, 0.95])
def test_truncated_model_file(tmp_path, random_net, keep_fraction):
    path = random_net(d=30, m=20).save(tmp_path / "model.npz")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        TwoLayerNet.load(path)


def test_flipped_byte_inside_an_array_is_detected(tmp_path, random_net):
    # zip members carry a CRC-32: a silently damaged weight must not load as a different model
    path = random_net(d=30, m=20).save(tmp_path / "model.npz")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("W.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0x01  # inside W's data (stored, uncompressed)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"array 'W' is truncated or corrupt"):
        TwoLayerNet.load(path)


def test_missing_model_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.npz does not exist"):
        TwoLayerNet.load(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="not a regular file"):
        TwoLayerNet.load(tmp_path)
