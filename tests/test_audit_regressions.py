"""Regression tests for the findings of the floating-point soundness audit (issue 13), one test per reproducer.

Each case is written out here (the repository stands alone) and states what must happen now. For the unsound
certificates (r1, r2, r2b, r3, r6) the acceptable outcomes are: the example is not certified, or the certifier
refuses with a clear ``SdpcertError``. Where the finding is a certificate of a non-robust point, the test also
evaluates the offending margin exactly (``fractions.Fraction`` from the stored doubles) at a point of the ball,
checks that it is >= 0 (so the case really is a counterexample: the test cannot pass by a mis-stated premise) and
that the reported ``worst_margin`` is not below it. Any other exception, and any numpy RuntimeWarning (pytest runs
with filterwarnings=error), fails the test.

- r1: subnormal logits (V = 2^-1074) whose rounded products flip the label at x itself.
- r2: ||V_i - V_j||^2 or ||W||_F^2 underflowing (values below 1e-162) in the spectral / Frobenius proofs.
- r2b: the same through ``sdpcert attack --check-certificates`` on the packaged SDP-NN rescaled by exact powers of
  two (the same classifier): no certified point may be broken (exit code 3 before).
- r3: ``hi - lo`` overflowing in the LP bound (weights near 1e308, or eps = 9e307).
- r4: a certificate for a different model: (a) weights made writable again, (b) ``Certifier.net`` reassigned,
  (c) cached ``PairBounds`` arrays edited in place.
- r6: finite weights near 1e306 whose logits overflow on MNIST inputs.
- r7: subnormal-scale weights: the pair SDP must solve to the exactly rescaled reference value, converged, in about
  as many sweeps as the reference (before: inf/NaN for all max_sweeps).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.certify import METHODS
from sdpcert.cli import main as cli_main
from sdpcert.model import load_pretrained

SMALLEST_SUBNORMAL = 2.0 ** -1074


# ----------------------------------------------------------------------------------------------- helpers
def exact_margin(net: TwoLayerNet, x, i: int, j: int) -> Fraction:
    """f_i(x) - f_j(x) of a ReLU net, exactly: the stored doubles and x read as rationals."""
    x = [Fraction(float(v)) for v in np.ravel(x)]
    W, b, V, b2 = net.W.tolist(), net.b.tolist(), net.V.tolist(), net.b2.tolist()
    hidden = [max(sum((Fraction(w) * xi for w, xi in zip(row, x)), Fraction(0)) + Fraction(bk), Fraction(0))
              for row, bk in zip(W, b)]
    logit = [sum((Fraction(v) * h for v, h in zip(row, hidden)), Fraction(0)) + Fraction(c) for row, c in zip(V, b2)]
    return logit[i] - logit[j]


def assert_not_certified(certifier: Certifier, X, y, eps: float, method: str, exact_worst: Fraction,
                         what: str) -> str:
    """The one-example certificate at ``eps`` either is refused with an SdpcertError or is not certified and its
    worst_margin is not below ``exact_worst`` (an exact margin attained in the ball). Returns the outcome."""
    assert exact_worst >= 0, f"premise: {what} must be a counterexample (exact margin {float(exact_worst)!r})"
    try:
        result = certifier.certify(np.asarray(X, dtype=np.float64), np.asarray(y), eps, method=method)
    except SdpcertError as exc:
        assert str(exc).strip(), f"{what}: an SdpcertError without a message"
        return f"refused: {exc}"
    bound = float(result.worst_margin[0])
    assert not result.certified[0], f"{what}: {method} at eps={eps!r} certifies (worst_margin {bound!r})"
    assert not math.isnan(bound), f"{what}: {method} at eps={eps!r}: worst_margin is NaN"
    assert bound == math.inf or Fraction(bound) >= exact_worst, (
        f"{what}: {method} at eps={eps!r}: worst_margin {bound!r} is below the exact margin {float(exact_worst)!r}")
    return "not certified"


# ----------------------------------------------------------------------------------------------- r1
def r1_net(n_high: int, n_low: int) -> TwoLayerNet:
    """d=1, relu, x = 1: hidden values 0.6 (n_high units) and 0.4 (n_low units), V_0 = 2^-1074 on the first group,
    V_1 = 2^-1074 on the second. Exactly f_1 - f_0 = (0.4 n_low - 0.6 n_high) 2^-1074 > 0, but every 0.6 t rounds up
    to t and every 0.4 t to 0, so the float logits put class 0 ahead."""
    h = np.array([0.6] * n_high + [0.4] * n_low)
    m = len(h)
    V = np.zeros((2, m))
    V[0, :n_high] = SMALLEST_SUBNORMAL
    V[1, n_high:] = SMALLEST_SUBNORMAL
    return TwoLayerNet(h[:, None], np.zeros(m), V, np.zeros(2), "relu")


@pytest.mark.parametrize("eps", [0.0, 1e-300, 1e-12])
@pytest.mark.parametrize("method", METHODS)
def test_r1_subnormal_logits_do_not_certify_a_point_misclassified_at_x(method, eps):
    net = r1_net(6, 10)
    X, y = np.array([[1.0]]), np.array([0])
    wrong = exact_margin(net, X[0], 1, 0)
    assert_not_certified(Certifier(net, threads=1), X, y, eps, method, wrong, "r1 (m=16)")


@pytest.mark.parametrize("eps", [0.0, 1e-300])
@pytest.mark.parametrize("method", METHODS)
def test_r1_lp_variant_with_many_underflowing_products(method, eps):
    """m = 60 (20 units at 0.6, 40 at 0.4): the exact margin at x is +4 quanta, beyond the LP's own nextafter()
    steps of a few quanta; checked for every method, it is the LP that certified it before."""
    net = r1_net(20, 40)
    X, y = np.array([[1.0]]), np.array([0])
    wrong = exact_margin(net, X[0], 1, 0)
    assert wrong > 0
    assert_not_certified(Certifier(net, threads=1), X, y, eps, method, wrong, "r1 (m=60)")


# ----------------------------------------------------------------------------------------------- r2
R2_NETS = {
    # ||V_1 - V_0|| = 1e-170: its square underflows, the pair norm bound became 5e-324
    "tiny-V": ([[1e150]], [0.0], [[0.0], [1e-170]], [1e-21, 0.0]),
    # ||W||_F = 1e-170: its square underflows, the Frobenius norm bound became 5e-324
    "tiny-W": ([[1e-170]], [0.0], [[0.0], [1e150]], [1e-21, 0.0]),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("variant", sorted(R2_NETS))
def test_r2_underflowing_squared_norms_do_not_certify(variant, method):
    """x = 0, eps = 1: at x' = 1 (in the ball) f_1 - f_0 = 1e-170 * 1e150 - 1e-21 = 9e-21 > 0."""
    net = TwoLayerNet(*R2_NETS[variant], activation="relu")
    wrong = exact_margin(net, [1.0], 1, 0)
    assert_not_certified(Certifier(net, threads=1), np.zeros((1, 1)), np.array([0]), 1.0, method, wrong,
                         f"r2 ({variant})")


# ----------------------------------------------------------------------------------------------- r2b
def test_r2b_cli_attack_breaks_no_certificate_of_the_rescaled_sdp_nn(tmp_path, capsys, monkeypatch):
    """The packaged SDP-NN with W, b times 2^500, V times 2^-560 and b2 times 2^-60 is the same classifier (logits
    times 2^-60). ``sdpcert attack --check-certificates`` must not find a broken certificate (exit 3 before: the
    spectral and Frobenius proofs collapsed and certified 97.5%), and no method may certify more points than it
    does for the unscaled net (an exact rescaling cannot make a proof stronger)."""
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)  # the packaged MNIST sample, first 200 test images
    net = load_pretrained("sdp-nn")
    scaled = TwoLayerNet(np.ldexp(net.W, 500), np.ldexp(net.b, 500), np.ldexp(net.V, -560), np.ldexp(net.b2, -60),
                         net.activation)
    model, report = tmp_path / "sdpnn_scaled.npz", tmp_path / "attack.json"
    scaled.save(model)
    code = cli_main(["attack", str(model), "--eps", "0.1", "--limit", "200", "--methods", "pgd",
                     "--check-certificates", "--json", str(report)])
    out, err = capsys.readouterr()
    assert code != 3, f"certified points broken by PGD:\n{out}\n{err}"
    if code == 2:  # a refusal must be one clear error line, not a traceback
        assert err.strip().splitlines()[-1].startswith("error:"), err
        return
    assert code == 0, (code, out, err)
    rows = json.loads(report.read_text())["results"]
    assert len(rows) == 1 and rows[0]["n"] == 200
    X, y = load_mnist_sample("test", limit=200, dtype=np.float64)
    reference = Certifier(net, input_domain=(0.0, 1.0)).certify_grid(X, y, [0.1], ["spectral", "frobenius", "lp"])
    for method in ("spectral", "frobenius", "lp"):
        got = rows[0]["certified"][method]
        assert got["broken"] == 0
        assert got["certified"] <= int(reference[(0.1, method)].certified.sum()), (
            f"{method}: the rescaled net has {got['certified']} certified points, the unscaled "
            f"{int(reference[(0.1, method)].certified.sum())}")


# ----------------------------------------------------------------------------------------------- r3
@pytest.mark.parametrize("method", METHODS)
def test_r3_lp_chord_overflow_does_not_certify(method):
    """W = 9e307, b = -8e307: over the ball (x = 0, eps = 1) the pre-activation spans [-1.7e308, 1e307], so
    hi - lo overflows; at x' = 1, f_1 - f_0 = 1e307 - 2e291 > 0."""
    net = TwoLayerNet([[9e307]], [-8e307], [[0.0], [1.0]], [2e291, 0.0], "relu")
    wrong = exact_margin(net, [1.0], 1, 0)
    assert_not_certified(Certifier(net, threads=1), np.zeros((1, 1)), np.array([0]), 1.0, method, wrong,
                         "r3 (weights near 1e308)")


@pytest.mark.parametrize("method", METHODS)
def test_r3_huge_eps_does_not_certify(method):
    """Moderate weights (W = 1, b = -8e307) and eps = 9e307 (an accepted radius): at x' = 9e307,
    f_1 - f_0 = 1e307 - 2e291 > 0."""
    net = TwoLayerNet([[1.0]], [-8e307], [[0.0], [1.0]], [2e291, 0.0], "relu")
    wrong = exact_margin(net, [9e307], 1, 0)
    assert_not_certified(Certifier(net, threads=1), np.zeros((1, 1)), np.array([0]), 9e307, method, wrong,
                         "r3 (eps = 9e307)")


# ----------------------------------------------------------------------------------------------- r4
def _r4_weights():
    rng = np.random.default_rng(0)
    W, V = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    b = rng.normal(size=4)
    X = rng.normal(size=(1, 3))
    return W, b, V, X


def _label_and_gap(net: TwoLayerNet, X: np.ndarray) -> tuple[np.ndarray, float]:
    logits = net.forward(X)[0]
    y = int(np.argmax(logits))
    return np.array([y]), float(logits[y] - logits[1 - y])


@pytest.mark.parametrize("name", ["W", "b", "V", "b2"])
def test_r4a_weights_cannot_be_made_writable_or_the_edit_is_seen(name):
    """Before: ``net.W.flags.writeable = True`` was allowed, an in-place edit kept the memoised fingerprint, and the
    pair-SDP cache served the old model's bounds (a certificate at 0.9x the old radius of a 100x larger net).
    Now the flag must be refused; if it is allowed, the edit must change the fingerprint and every certificate
    must be the one of a fresh net with the edited weights."""
    W, b, V, X = _r4_weights()
    net = TwoLayerNet(W, b, V, np.zeros(2))
    fp0 = net.fingerprint()
    Certifier(net, threads=1).pair_bounds()  # fill the cache for the original weights
    array = getattr(net, name)
    try:
        array.flags.writeable = True
    except ValueError:
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[...] = 0.0
        assert net.fingerprint() == fp0
        return
    array[...] *= 100.0
    assert net.fingerprint() != fp0, f"{name} edited in place but the fingerprint is unchanged"
    fresh = TwoLayerNet(np.array(net.W), np.array(net.b), np.array(net.V), np.array(net.b2))
    y, gap = _label_and_gap(fresh, X)
    S_old = Certifier(TwoLayerNet(W, b, V, np.zeros(2)), threads=1).pair_bounds().upper[0, 1]
    eps = 0.9 * gap / (0.25 * S_old) if S_old > 0 else 0.1
    for method in METHODS:
        got = Certifier(net, threads=1).certify(X, y, eps, method=method)
        want = Certifier(fresh, threads=1).certify(X, y, eps, method=method)
        assert np.array_equal(got.worst_margin, want.worst_margin), (name, method)


@pytest.mark.parametrize("method", ["sdp", "spectral", "frobenius", "lp"])
def test_r4b_reassigning_certifier_net_is_refused_or_certifies_the_new_net(method):
    """Before: ``cert.net = big`` kept the growth matrix of the old, 100x smaller net and certified the big net at
    0.9x the small net's radius. Now the assignment must raise AttributeError, or the certificate must be exactly
    that of a fresh Certifier(big)."""
    W, b, V, X = _r4_weights()
    small, big = TwoLayerNet(W, b, V, np.zeros(2)), TwoLayerNet(W * 100.0, b, V, np.zeros(2))
    certifier = Certifier(small, threads=1)
    certifier.certify(X, np.array([0]), 0.1, method=method)  # fills the per-model state of `small`
    y, gap = _label_and_gap(big, X)
    eps = 0.9 * gap / (0.25 * Certifier(small, threads=1).pair_bounds().upper[0, 1])
    fresh = Certifier(big, threads=1).certify(X, y, eps, method=method)
    try:
        certifier.net = big
    except AttributeError:
        assert certifier.net is small
        return
    got = certifier.certify(X, y, eps, method=method)
    assert np.array_equal(got.worst_margin, fresh.worst_margin), (got.worst_margin, fresh.worst_margin)
    assert bool(got.certified[0]) == bool(fresh.certified[0])


PAIR_BOUND_ARRAYS = ("lower", "upper", "pairs", "dual", "lambda_bound", "sweeps")


def test_r4c_pair_bounds_arrays_are_read_only():
    """Before: the cached PairBounds arrays were writable and shared with the module cache, so ``S[S > 1] = 0`` on a
    returned array made every later Certifier of that model certify at twice its radius."""
    W, b, V, X = _r4_weights()
    net = TwoLayerNet(W, b, V, np.zeros(2))
    bounds = Certifier(net, threads=1).pair_bounds()
    for name in PAIR_BOUND_ARRAYS:
        array = getattr(bounds, name)
        assert isinstance(array, np.ndarray), name
        assert not array.flags.writeable, f"PairBounds.{name} is writable"
        with pytest.raises(ValueError):
            array[...] = 0


def test_r4c_editing_pair_bounds_never_changes_a_later_certificate():
    """Even a deliberate ``flags.writeable = True`` followed by an edit of every returned PairBounds array (where
    numpy allows the flag at all) must leave the certificates of a new Certifier of the same model unchanged."""
    W, b, V, X = _r4_weights()
    net = TwoLayerNet(W, b, V, np.zeros(2))
    y, gap = _label_and_gap(net, X)
    bounds = Certifier(net, threads=1).pair_bounds()
    eps = 2.0 * gap / (0.25 * bounds.upper[0, 1])  # twice the certifiable radius: must not certify
    before = Certifier(net, threads=1).certify(X, y, eps)
    assert not before.certified[0]
    for name in PAIR_BOUND_ARRAYS:
        array = getattr(bounds, name)
        try:
            array.flags.writeable = True
        except ValueError:
            continue
        array[...] = 0
    after = Certifier(net, threads=1).certify(X, y, eps)
    assert np.array_equal(after.worst_margin, before.worst_margin), (before.worst_margin, after.worst_margin)
    assert not after.certified[0]


# ----------------------------------------------------------------------------------------------- r6
def _r6_net() -> TwoLayerNet:
    rng = np.random.default_rng(0)
    return TwoLayerNet(np.abs(rng.normal(size=(20, 784))) * 1e306, np.zeros(20), rng.normal(size=(10, 20)),
                       np.zeros(10))


@pytest.mark.parametrize("method", ["sdp", "lp"])
def test_r6_overflowing_logits_are_refused_or_certify_nothing(method):
    """Finite weights ~1e306: the logits of ordinary MNIST inputs overflow to inf/NaN. Before: no error, predictions
    from NaN rows, a clean error computed from them. Now: a clear SdpcertError, or nothing certified (and no
    numpy overflow warning on the way)."""
    X, y = load_mnist_sample("test", limit=200, dtype=np.float64)
    try:
        result = Certifier(_r6_net(), threads=1).certify(X, y, 0.1, method=method)
    except SdpcertError as exc:
        assert str(exc).strip()
        return
    assert not result.certified.any(), f"{int(result.certified.sum())} points certified from overflowing logits"
    assert not np.isnan(result.worst_margin).any(), "NaN worst margins are not upper bounds"


def test_r6_cli_certify_refuses_or_certifies_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)
    model, report = tmp_path / "nan_logits.npz", tmp_path / "certify.json"
    _r6_net().save(model)
    code = cli_main(["certify", str(model), "--eps", "0.1", "--limit", "200", "--methods", "sdp,lp",
                     "--json", str(report)])
    out, err = capsys.readouterr()
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("error:"), err
        return
    assert code == 0, (code, out, err)
    rows = json.loads(report.read_text())["results"]
    assert {row["method"] for row in rows} == {"sdp", "lp"}
    for row in rows:
        assert row["certified_error"] == 1.0, row


# ----------------------------------------------------------------------------------------------- r7
R7_VARIANTS = {"V * 2^-1030": ("V", -1030), "W * 2^-1030": ("W", -1030), "V * 2^-1020": ("V", -1020)}


@pytest.mark.parametrize("variant", sorted(R7_VARIANTS))
def test_r7_subnormal_scale_pair_sdp_solves_to_the_rescaled_reference(variant):
    """Weights scaled into the subnormal range: the pair SDP value scales exactly with V (and W), so the solve must
    converge to 2^shift times the value of the exactly rescaled weights, in about as many sweeps. Before: the
    solver's power-of-two scaling factor overflowed to inf, every sweep ran on NaN for all max_sweeps, upper = inf."""
    which, shift = R7_VARIANTS[variant]
    rng = np.random.default_rng(0)
    W, V = rng.normal(size=(6, 5)), rng.normal(size=(2, 6))
    tiny = {"W": W, "V": V}
    tiny[which] = np.ldexp(tiny[which], shift)  # subnormal entries: rounded to the 2^-1074 grid
    back = {"W": tiny["W"], "V": tiny["V"]}
    back[which] = np.ldexp(tiny[which], -shift)  # exactly the same numbers times 2^-shift, all normal
    solved = Certifier(TwoLayerNet(tiny["W"], np.zeros(6), tiny["V"], np.zeros(2)), threads=1).pair_bounds()
    ref = Certifier(TwoLayerNet(back["W"], np.zeros(6), back["V"], np.zeros(2)), threads=1).pair_bounds()
    assert ref.status == ("converged",), ref.status
    assert solved.status == ("converged",), f"{variant}: status {solved.status}, upper {solved.upper[0, 1]!r}"
    upper = math.ldexp(float(solved.upper[0, 1]), -shift)
    lower = math.ldexp(float(solved.lower[0, 1]), -shift)
    # a proven upper bound of the same SDP: at least the reference's lower bound, and as tight as the tolerance
    assert ref.lower[0, 1] <= upper <= ref.upper[0, 1] * (1 + 2 * ref.rel_tol), (variant, upper, ref.upper[0, 1])
    assert lower <= ref.upper[0, 1], (variant, lower, ref.upper[0, 1])
    assert solved.sweeps[0] <= 2 * ref.sweeps[0] + 50, (variant, int(solved.sweeps[0]), int(ref.sweeps[0]))
