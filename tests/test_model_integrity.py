"""A certificate is about the model it was computed for: weights and results cannot be edited in place, cached
values are keyed by the model and the solver settings, and inputs that float64 cannot hold exactly (or arguments
that make no sense) are refused with the package's own errors instead of being rounded, truncated or passed on."""

from __future__ import annotations

import copy
import pickle
from fractions import Fraction

import numpy as np
import pytest

from sdpcert import Certifier, ModelFileError, NonFiniteError, SdpcertError, ShapeError, TwoLayerNet
from sdpcert import certify as certify_module
from sdpcert.attacks import fgsm, pgd
from sdpcert.certify import PAIR_BOUNDS_CACHE, PairBoundsCache, certify_with_growth, check_eps
from sdpcert.errors import CoreArgumentError, UnsoundCertificateError
from sdpcert.model import MODEL_FORMAT_VERSION

LONG_DOUBLE_IS_WIDER = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
needs_wide_long_double = pytest.mark.skipif(not LONG_DOUBLE_IS_WIDER,
                                            reason="long double is float64 on this platform")


@pytest.fixture
def stale_setup():
    """The audit's case: a 3-4-2 net, one input, and the radius at which the 100x larger first layer would be
    certified with the small net's pair SDP value S_01 (but not with its own, 100x larger, one)."""
    rng = np.random.default_rng(0)
    W, b, V = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4))
    small = TwoLayerNet(W, b, V, np.zeros(2))
    big = TwoLayerNet(W * 100.0, b, V, np.zeros(2))
    X = rng.normal(size=(1, 3))
    logits = big.forward(X)[0]
    y = np.array([int(np.argmax(logits))])
    margin = logits[1 - y[0]] - logits[y[0]]
    eps = 0.9 * (-margin) / (0.25 * Certifier(small).pair_bounds().upper[0, 1])
    return small, big, X, y, eps


# ------------------------------------------------------------------------------------ r4 (a): frozen weights
def test_weights_cannot_be_made_writable(random_net):
    net = random_net()
    for arr in (net.W, net.b, net.V, net.b2):
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.flags.writeable = True
        base = arr
        while isinstance(base, np.ndarray):  # nor the array the view was made from
            if base.flags.writeable is False:
                with pytest.raises(ValueError, match="WRITEABLE"):
                    base.flags.writeable = True
            base = base.base
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0.0


def test_an_edited_copy_is_another_model_with_its_own_pair_values(stale_setup):
    """The stale-cache certificate of the audit: the edited net must not be certified with the old S_01."""
    small, big, X, y, eps = stale_setup
    assert big.fingerprint() != small.fingerprint()
    assert Certifier(big).pair_bounds().upper[0, 1] > 50 * Certifier(small).pair_bounds().upper[0, 1]
    assert not Certifier(big).certify(X, y, eps).certified[0]


def test_pickle_and_deepcopy_keep_weights_frozen(random_net):
    net = random_net()
    fingerprint = net.fingerprint()
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net), copy.copy(net)):
        assert clone.fingerprint() == fingerprint
        with pytest.raises(ValueError, match="WRITEABLE"):
            clone.W.flags.writeable = True


# ------------------------------------------------------------------------------------ r4 (b): Certifier.net
def test_certifier_net_and_settings_are_read_only(stale_setup):
    small, big, X, y, eps = stale_setup
    cert = Certifier(small)
    cert.certify(X, np.array([0]), 0.1)  # fills its growth matrix
    for name, value in (("net", big), ("rel_tol", 0.5), ("seed", 3), ("threads", 1), ("max_sweeps", 7)):
        with pytest.raises(AttributeError):
            setattr(cert, name, value)
    assert cert.net is small
    # A Certifier of the big net has its own growth matrix and does not certify at the small net's radius.
    assert not Certifier(big).certify(X, y, eps).certified[0]


def test_growth_matrices_are_keyed_by_model_and_settings(random_net):
    net = random_net(d=5, m=4, k=3, seed=11)
    a, b = Certifier(net, rel_tol=1e-6), Certifier(net, rel_tol=1e-3)
    assert a.pair_bounds() is not b.pair_bounds()  # different solver settings: separate cache entries
    assert a.pair_bounds() is Certifier(net, rel_tol=1e-6).pair_bounds()
    for method in ("sdp", "spectral", "frobenius"):
        G = a.growth(method)
        assert G is a.growth(method)  # computed once per certifier
        with pytest.raises(ValueError, match="read-only"):
            G[0, 1] = 0.0


# ------------------------------------------------------------------------------------ r4 (c): result arrays
def test_pair_bounds_arrays_cannot_be_edited(random_net):
    net = random_net(d=5, m=4, k=3, seed=12)
    pb = Certifier(net).pair_bounds()
    for name in ("lower", "upper", "pairs", "dual", "lambda_bound", "sweeps", "gap", "relative_gap"):
        arr = getattr(pb, name)
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.flags.writeable = True
    with pytest.raises(AttributeError):
        pb.upper = np.zeros((3, 3))  # a frozen dataclass
    assert isinstance(pb.status, tuple)


def test_editing_a_returned_array_cannot_change_later_certificates(stale_setup):
    """Variant 3 of the audit: zeroing the big entries of the shared S must not make a new Certifier certify."""
    small, _, X, _, _ = stale_setup
    logits = small.forward(X)[0]
    y = np.array([int(np.argmax(logits))])
    upper = Certifier(small).pair_bounds().upper
    eps = 2.0 * (-(logits[1 - y[0]] - logits[y[0]])) / (0.25 * upper[0, 1])  # twice the certifiable radius
    assert not Certifier(small).certify(X, y, eps).certified[0]
    with pytest.raises(ValueError, match="read-only"):
        upper[upper > 1] = 0.0
    assert not Certifier(small).certify(X, y, eps).certified[0]


def test_certification_result_arrays_cannot_be_edited(random_net):
    net = random_net(d=6, m=5, k=3, seed=13)
    X = np.random.default_rng(1).uniform(size=(4, 6))
    y = net.predict(X)
    for method in ("sdp", "spectral", "lp"):
        result = Certifier(net).certify(X, y, 0.01, method)
        for name in ("labels", "predicted", "worst_margin", "worst_class", "certified", "correct"):
            with pytest.raises(ValueError, match="read-only"):
                getattr(result, name)[...] = 0
    labels = np.array(y)
    result = Certifier(net).certify(X, labels, 0.01, "spectral")
    labels[0] = (labels[0] + 1) % 3  # the caller's array stays the caller's
    assert result.labels[0] == y[0]


# ------------------------------------------------------------------------------------ the cache object
def test_pair_bounds_cache_is_a_bounded_lru(random_net):
    cache = PairBoundsCache(max_entries=2)
    pbs = [Certifier(random_net(d=3, m=2, k=2, seed=20 + i)).pair_bounds() for i in range(3)]
    cache.put("a", pbs[0])
    cache.put("b", pbs[1])
    assert cache.get("a") is pbs[0]  # "a" is now the most recently used
    cache.put("c", pbs[2])
    assert len(cache) == 2 and "b" not in cache and cache.get("a") is pbs[0] and cache.get("c") is pbs[2]
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
    with pytest.raises(SdpcertError, match="holds PairBounds"):
        cache.put("d", {"upper": np.zeros((2, 2))})
    with pytest.raises(SdpcertError, match="max_entries"):
        PairBoundsCache(0)
    assert not hasattr(certify_module, "_PAIR_CACHE")


def test_clear_cache_forces_a_new_solve_but_a_certifier_keeps_its_own(random_net):
    net = random_net(d=5, m=4, k=3, seed=14)
    cert = Certifier(net)
    first = cert.pair_bounds()
    assert len(PAIR_BOUNDS_CACHE) >= 1
    Certifier.clear_cache()
    assert len(PAIR_BOUNDS_CACHE) == 0
    assert cert.pair_bounds() is first  # the certifier's own copy of its model's values
    second = Certifier(net).pair_bounds()
    assert second is not first
    np.testing.assert_array_equal(second.upper, first.upper)


# ------------------------------------------------------------------------------------ exactly representable
def weights(**changes):
    rng = np.random.default_rng(3)
    out = {"W": rng.normal(size=(4, 3)), "b": np.zeros(4), "V": rng.normal(size=(2, 4)), "b2": np.zeros(2)}
    out.update(changes)
    return out


@pytest.mark.parametrize("name", ["W", "b", "V", "b2"])
def test_integers_beyond_2_53_are_refused_unless_exact(name):
    shape = weights()[name].shape
    big = np.ones(shape, dtype=np.int64)
    big.flat[0] = 2 ** 53 + 1
    with pytest.raises(SdpcertError, match=rf"{name} holds 1 value that float64 cannot represent exactly"):
        TwoLayerNet(**weights(**{name: big}))
    big.flat[0] = 2 ** 60  # a power of two: exact, accepted, and stored as that very number
    assert getattr(TwoLayerNet(**weights(**{name: big})), name).flat[0] == 2.0 ** 60
    big.flat[0] = np.iinfo(np.int64).max  # rounds up to 2^63, which int64 cannot even hold
    with pytest.raises(SdpcertError, match="cannot represent exactly"):
        TwoLayerNet(**weights(**{name: big}))
    unsigned = np.ones(shape, dtype=np.uint64)
    unsigned.flat[0] = np.iinfo(np.uint64).max
    with pytest.raises(SdpcertError, match=rf"{name} holds 1 value.*uint64"):
        TwoLayerNet(**weights(**{name: unsigned}))


@needs_wide_long_double
def test_long_double_weights_must_lie_on_the_float64_grid():
    W = weights()["W"].astype(np.longdouble)
    assert TwoLayerNet(**weights(W=W)).fingerprint() == TwoLayerNet(**weights()).fingerprint()  # exact: accepted
    W[1, 2] = np.longdouble(1) / 3
    with pytest.raises(SdpcertError, match=r"W holds 1 value .* first at index \(1, 2\)"):
        TwoLayerNet(**weights(W=W))
    W[1, 2] = np.longdouble(np.finfo(np.float64).max) * 4  # finite as a long double, inf as a double
    with pytest.raises(SdpcertError, match="cannot represent exactly"):
        TwoLayerNet(**weights(W=W))


def test_model_file_with_inexact_integers_is_a_model_file_error(tmp_path):
    W = np.ones((4, 3), dtype=np.int64)
    W[0, 0] = 2 ** 53 + 1
    arrays = {**weights(W=W), "activation": np.array("relu"), "format_version": np.array(MODEL_FORMAT_VERSION)}
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ModelFileError, match="W holds 1 value that float64 cannot represent exactly"):
        TwoLayerNet.load(tmp_path / "m.npz")


def test_unknown_arrays_in_a_model_file_are_named(tmp_path):
    arrays = {**weights(), "activation": np.array("relu"), "format_version": np.array(MODEL_FORMAT_VERSION),
              "W2": np.ones((2, 2)), "scale": np.array(2.0)}
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ModelFileError, match=r"unknown array\(s\) \['W2', 'scale'\]"):
        TwoLayerNet.load(tmp_path / "m.npz")


def test_inputs_must_be_exact_in_float64(random_net):
    net = random_net(d=3, m=4, k=2, seed=5)
    cert = Certifier(net)
    y = np.array([0])
    X_int = np.array([[1, 2, 2 ** 53 + 1]], dtype=np.int64)
    with pytest.raises(SdpcertError, match=r"X holds 1 value that float64 cannot represent exactly"):
        cert.certify(X_int, y, 0.1, "spectral")
    with pytest.raises(SdpcertError, match=r"X holds 1 value"):
        net.forward(X_int)
    exact = cert.certify(np.array([[1, 2, 2 ** 60]], dtype=np.int64), y, 0.1, "spectral")
    assert exact.worst_margin.shape == (1,)
    if LONG_DOUBLE_IS_WIDER:
        X_ld = np.full((1, 3), np.longdouble(1) / 3)
        for call in (lambda: cert.certify(X_ld, y, 0.1, "spectral"), lambda: net.predict(X_ld),
                     lambda: fgsm(net, X_ld, y, 0.1), lambda: pgd(net, X_ld, y, 0.1, steps=1)):
            with pytest.raises(SdpcertError, match="X holds 3 values that float64 cannot represent exactly"):
                call()
        X_ok = np.full((1, 3), np.longdouble(0.25))
        np.testing.assert_array_equal(cert.certify(X_ok, y, 0.1, "spectral").worst_margin,
                                      cert.certify(X_ok.astype(np.float64), y, 0.1, "spectral").worst_margin)


# ------------------------------------------------------------------------------------ eps, G, arguments
@pytest.mark.parametrize("eps", [True, False, np.bool_(True), "0.1", b"0.1", Fraction(1, 3), 2 ** 60 + 1],
                         ids=["True", "False", "np.True_", "str", "bytes", "Fraction", "int>2^53"])
def test_eps_must_be_an_exact_real_number(random_net, eps):
    net = random_net(d=3, m=4, k=2, seed=6)
    X, y = np.full((1, 3), 0.5), np.array([0])
    with pytest.raises(SdpcertError, match="eps"):
        check_eps(eps)
    with pytest.raises(SdpcertError, match="eps"):
        Certifier(net).certify(X, y, eps, "spectral")
    with pytest.raises(SdpcertError, match="eps"):
        fgsm(net, X, y, eps)


def test_exact_eps_of_any_numeric_type_is_accepted():
    assert check_eps(np.float32(0.1)) == float(np.float32(0.1))
    assert check_eps(np.longdouble(0.5)) == 0.5 and check_eps(3) == 3.0 and check_eps(Fraction(1, 4)) == 0.25
    assert check_eps(np.array(0.125)) == 0.125
    if LONG_DOUBLE_IS_WIDER:
        with pytest.raises(SdpcertError, match="not exactly a float64"):
            check_eps(np.longdouble(1) / 10)
    with pytest.raises(NonFiniteError, match="eps must be finite"):
        check_eps(10 ** 400)


def test_certify_with_growth_refuses_negative_or_nan_off_diagonal(random_net):
    net = random_net(d=3, m=4, k=3, seed=7)
    X, y = np.full((2, 3), 0.5), np.array([0, 1])
    G = np.ones((3, 3))
    G[0, 1] = -1e-12
    with pytest.raises(SdpcertError, match="G must be >= 0 off the diagonal"):
        certify_with_growth(net, X, y, 0.1, G)
    G[0, 1] = np.nan
    with pytest.raises(NonFiniteError, match="G contains non-finite off-diagonal"):
        certify_with_growth(net, X, y, 0.1, G)
    with pytest.raises(SdpcertError, match="G must hold real numbers"):
        certify_with_growth(net, X, y, 0.1, np.ones((3, 3), dtype=bool))
    with pytest.raises(ShapeError, match=r"G must have shape \(3, 3\)"):
        certify_with_growth(net, X, y, 0.1, np.ones((2, 2)))
    G = np.ones((3, 3))
    G[np.diag_indices(3)] = [-5.0, np.nan, 7.0]  # the diagonal is never used
    np.testing.assert_array_equal(certify_with_growth(net, X, y, 0.1, G).worst_margin,
                                  certify_with_growth(net, X, y, 0.1, np.ones((3, 3))).worst_margin)


@pytest.mark.parametrize("kwargs, words", [
    ({"max_sweeps": 0}, "max_sweeps must be an integer"),
    ({"max_sweeps": 2.7}, "max_sweeps must be an integer"),
    ({"max_sweeps": 3.0}, "max_sweeps must be an integer"),
    ({"max_sweeps": "a"}, "max_sweeps must be an integer"),
    ({"max_sweeps": True}, "max_sweeps must be an integer"),
    ({"max_sweeps": 2 ** 31}, "max_sweeps must be an integer"),
    ({"seed": -1}, "seed must be an integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": 2 ** 64}, "seed must be an integer"),
    ({"rel_tol": "a"}, "rel_tol must lie in"),
    ({"rel_tol": True}, "rel_tol must lie in"),
    ({"rel_tol": None}, "rel_tol must lie in"),
    ({"threads": -1}, "threads must be an integer"),
    ({"threads": 1.5}, "threads must be an integer"),
])
def test_certifier_arguments_are_checked_at_construction(random_net, kwargs, words):
    with pytest.raises(SdpcertError, match=words):
        Certifier(random_net(), **kwargs)


def test_valid_certifier_arguments_of_numpy_types(random_net):
    cert = Certifier(random_net(d=3, m=2, k=2, seed=8), rel_tol=np.float32(1e-4), threads=np.int64(1),
                     seed=np.uint64(2 ** 64 - 1), max_sweeps=np.int32(50))
    assert (cert.threads, cert.seed, cert.max_sweeps) == (1, 2 ** 64 - 1, 50)
    assert cert.pair_bounds().upper.shape == (2, 2)


def test_core_argument_errors_are_sdpcert_errors():
    import torch

    from sdpcert.torch import certified_dual_bounds, top_eigenpairs

    W, V = np.ones((3, 2)), np.ones((2, 3))
    with pytest.raises(CoreArgumentError, match=r"cs must have shape \(1, 6\)"):
        certified_dual_bounds(W, V, np.zeros((1, 5)), [(0, 1)])
    assert issubclass(CoreArgumentError, SdpcertError)
    Wt, Vt = torch.ones(3, 2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    c = torch.zeros(1, 6, dtype=torch.float64)
    for kwargs, words in (({"max_iter": 2.7}, "max_iter must be an integer"), ({"max_iter": 0}, "max_iter"),
                          ({"threads": -1}, "threads must be an integer"), ({"tol": "a"}, "tol must be positive")):
        with pytest.raises(SdpcertError, match=words):
            top_eigenpairs(Wt, Vt, c, [(0, 1)], backend="core", **kwargs)


def test_attack_seed_is_checked(random_net):
    net = random_net(d=3, m=4, k=2, seed=9)
    X, y = np.full((1, 3), 0.5), np.array([0])
    for seed in (2 ** 64, 1.5, True, "1"):
        with pytest.raises(SdpcertError, match="seed must be an integer"):
            pgd(net, X, y, 0.1, steps=1, seed=seed)


def test_an_unsound_certificate_is_not_an_input_error():
    assert not issubclass(UnsoundCertificateError, SdpcertError)
