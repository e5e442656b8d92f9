"""Test helpers for the standing fuzz suite (tests/test_fuzz_soundness.py): tiny networks at the edges of floating
point, exact arithmetic on their weights, oracles that find the worst point of an l_inf ball, and the largest radius
a method certifies.

Why this is a proof of soundness and not a statistical check. A certificate claims, for an example (x, y) and a
radius eps, that ``worst_margin >= max_{j != y} max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` for the EXACT network
whose weights are the stored float64 numbers. Any point x' of the ball therefore gives a lower bound on the right
side, and if we evaluate ``f_j(x') - f_y(x')`` exactly (``ExactNet``: ``fractions.Fraction`` for ReLU, where the
value is rational; mpmath at 50 digits for tanh / sigmoid) a certificate below that value is refuted with no
tolerance at all. The oracles (activation-pattern enumeration for ReLU, grid + L-BFGS-B + PGD for smooth nets) only
*propose* points; they may be inaccurate without making the test wrong, because every proposed point is moved into
the ball exactly (in rationals) and judged exactly.

The oracles run on a *conditioned* copy of the network over the unit box (``ball_reference_net``): the ball
``x + eps [-1, 1]^d`` is mapped to ``u in [-1, 1]^d`` (or ``[0, 1]^d`` for PGD), its pre-activations
``(eps W) u + (W x + b)`` are formed exactly and, for ReLU (positively homogeneous), each hidden unit is rescaled by
a power of two compensated in V; V and b2 are rescaled by one common power of two. So a net with weights near 1e300
or 1e-320 is searched by an LP solver that sees numbers of order one, and its worst point is the same.

Weight families (``FAMILIES``; ``make_case(family, seed, activation)``), with d in 1..3, m in 1..6 (but see
"quanta"), k in 2..3:

- ``normal``: Gaussian weights.
- ``pow2``: a Gaussian net with W, b scaled by 2^a and V by 2^c, b2 by 2^(a+c), |a|, |c| up to 560. For ReLU this
  is exactly the same classifier (relu is positively homogeneous and power-of-two scaling is exact while nothing
  under- or overflows): every proof must give the same radius as for the unscaled net (``FuzzCase.base``).
- ``structured``: duplicated rows (same and opposite sign), zero rows of W, zero biases, equal rows of V (a pair with
  V_i = V_j), zero columns of V, sparse matrices.
- ``small_int``: integers in [-3, 3] and half-integer inputs: exact ties between logits and pre-activations exactly
  0 at x, where a rounding error decides the label.
- ``subnormal``: V and b2 times 2^-1060, or W and b times 2^-1060 (subnormal weights), or "quanta": V and b2 whole
  multiples of 2^-1074 and hidden values near 0.6 / 0.4, so that each product V_jk h_k rounds to a whole quantum
  and the float logits can pick the wrong class (audit r1; m = 8..16 here, d = 1: it takes more underflowing
  products than the certifier's last ulp steps absorb).
- ``huge``: weights near 1e300 (W, V or both), and an "overflow" flavour whose logits at the examples exceed the
  largest double; refusing with an ``SdpcertError`` is allowed, and where a pre-activation or logit at x exceeds
  the largest double the example must not be certified.
- ``mixed``: entries of 1e200, 1 and 1e-200 in one matrix; products may overflow, refusing is allowed.
- ``tight``: one hidden unit active on the whole ball with equal-magnitude weights, at power-of-two scales down to
  subnormal logits: every method's bound equals the exact worst margin up to rounding, so a proof that forgets a
  rounding or underflow term is caught at the ulp level.

``largest_certified_radius`` finds, per example and method, the exact float boundary of the certified radii by
bisection on the bit patterns of the non-negative doubles (which are ordered like the doubles themselves).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import mpmath
import numpy as np
from scipy.optimize import minimize

from sdpcert import TwoLayerNet
from sdpcert.attacks import pgd

from reference import relu_max_margin_enum

__all__ = ["FAMILIES", "FuzzCase", "make_case", "ExactNet", "labelled_examples", "ball_reference_net",
           "relu_worst_points", "smooth_worst_points", "exact_worst_margin", "bound_covers",
           "largest_certified_radius", "float_from_bits", "bits_of_float", "SUBNORMAL_SHIFT"]

FAMILIES = ("normal", "pow2", "structured", "small_int", "subnormal", "huge", "mixed", "tight")

#: V * 2^-1060: every entry of order one becomes subnormal (2^-1022 is the smallest normal double).
SUBNORMAL_SHIFT = -1060
#: The smallest positive subnormal, 2^-1074.
QUANTUM = 2.0 ** -1074

#: Power-of-two scalings (a, c) of the pow2 family: W, b times 2^a; V times 2^c; b2 times 2^(a+c).
POW2_SCALES = ((500, -500), (-500, 500), (500, -560), (-500, -500), (500, 0), (0, -500), (-480, 0), (0, 480),
               (300, 300), (-520, 20))
#: Scalings (a, c) of the tight family: W, b times 2^a, V times 2^c, b2 times 2^(a+c); the last ones put the
#: logits and V into the subnormal range, where only an explicit underflow allowance keeps a tight bound sound.
TIGHT_SCALES = ((0, 0), (500, -560), (-500, 500), (300, 300), (-540, -500), (0, -1065), (-20, -1050))

_MP_DIGITS = 50  # mpmath precision of the smooth nets' exact evaluation (the slack in bound_covers matches it)


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class FuzzCase:
    """One generated network and its example inputs (raw float64 arrays, not yet a TwoLayerNet).

    ``may_refuse``: numbers may overflow, so the certifier may answer with an ``SdpcertError`` instead of a result.
    ``base``: for the pow2 family, the unscaled weights (W, b, V, b2) of the same classifier."""

    family: str
    flavor: str
    seed: int
    activation: str
    W: np.ndarray
    b: np.ndarray
    V: np.ndarray
    b2: np.ndarray
    X: np.ndarray
    may_refuse: bool = False
    base: Optional[tuple] = None

    @property
    def name(self) -> str:
        return f"{self.family}/{self.flavor}/seed={self.seed}/{self.activation}"

    def net(self) -> TwoLayerNet:
        return TwoLayerNet(self.W, self.b, self.V, self.b2, activation=self.activation)

    def base_net(self) -> TwoLayerNet:
        return TwoLayerNet(*self.base, activation=self.activation)


def _sizes(rng: np.random.Generator) -> tuple[int, int, int]:
    return int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(2, 4))  # d, m, k


def _normal_weights(rng, d, m, k, scale=None):
    scale = float(rng.choice([0.5, 1.0, 2.0])) if scale is None else scale
    return (rng.normal(size=(m, d)) * scale, rng.normal(size=m), rng.normal(size=(k, m)),
            rng.normal(size=k) * 0.5)


def make_case(family: str, seed: int, activation: str = "relu") -> FuzzCase:
    """A seeded, deterministic network of ``family`` (see the module docstring) with 2 example inputs."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families are {FAMILIES}")
    # a different stream per family and activation, so adding cases to one family leaves the others unchanged
    rng = np.random.default_rng([seed, FAMILIES.index(family), ("relu", "tanh", "sigmoid").index(activation)])
    d, m, k = _sizes(rng)
    X = rng.normal(size=(2, d))
    kw: dict = {}
    if family == "normal":
        flavor = "gauss"
        W, b, V, b2 = _normal_weights(rng, d, m, k)
    elif family == "pow2":
        a, c = POW2_SCALES[seed % len(POW2_SCALES)]
        flavor = f"2^{a},2^{c}"
        base = _normal_weights(rng, d, m, k)
        W0, b0, V0, b20 = base
        W, b, V = np.ldexp(W0, a), np.ldexp(b0, a), np.ldexp(V0, c)
        # relu(2^a z) = 2^a relu(z): the logits are 2^(a+c) times the unscaled ones (the same classifier); for
        # tanh / sigmoid this is simply another network with extreme weights.
        b2 = np.ldexp(b20, a + c)
        kw = {"base": base}
    elif family == "structured":
        W, b, V, b2 = _normal_weights(rng, d, m, k)
        W, b, V, b2 = W.copy(), b.copy(), V.copy(), b2.copy()
        ops = []
        if m >= 2 and rng.random() < 0.6:
            src, dst = rng.choice(m, size=2, replace=False)
            sign = float(rng.choice([1.0, -1.0]))
            W[dst], b[dst] = sign * W[src], sign * b[src]
            ops.append("dup-row" if sign > 0 else "neg-row")
        if rng.random() < 0.4:
            W[rng.integers(m)] = 0.0
            ops.append("zero-W-row")
        if rng.random() < 0.3:
            b[:] = 0.0
            ops.append("zero-b")
        if rng.random() < 0.5:
            src, dst = rng.choice(k, size=2, replace=False)
            V[dst] = V[src]
            ops.append("equal-V-rows")
            if rng.random() < 0.5:
                b2[dst] = b2[src]  # two identical classes: an exact tie everywhere
                ops.append("equal-classes")
        if rng.random() < 0.4:
            V[:, rng.integers(m)] = 0.0
            ops.append("zero-V-col")
        if rng.random() < 0.4:
            W[rng.random(W.shape) < 0.6] = 0.0
            V[rng.random(V.shape) < 0.5] = 0.0
            ops.append("sparse")
        flavor = "+".join(ops) or "plain"
    elif family == "small_int":
        flavor = "ints"
        W = rng.integers(-3, 4, size=(m, d)).astype(float)
        b = rng.integers(-3, 4, size=m).astype(float)
        V = rng.integers(-3, 4, size=(k, m)).astype(float)
        b2 = rng.integers(-2, 3, size=k).astype(float)
        X = rng.integers(-4, 5, size=(2, d)) / 2.0
    elif family == "subnormal":
        flavor = ("V-scaled", "W-scaled", "quanta")[seed % 3]
        W, b, V, b2 = _normal_weights(rng, d, m, k)
        if flavor == "V-scaled":
            V, b2 = np.ldexp(V, SUBNORMAL_SHIFT), np.ldexp(b2, SUBNORMAL_SHIFT)
        elif flavor == "W-scaled":
            W, b = np.ldexp(W, SUBNORMAL_SHIFT), np.ldexp(b, SUBNORMAL_SHIFT)
        else:
            # audit r1 generalised: V and b2 are whole quanta 2^-1074, the hidden values (x = 1) lie near 0.6 on
            # the first half of the units and near 0.4 on the second, so every product V_jk h_k rounds to a whole
            # quantum, up on the first half and down on the second. Class 0 reads the first half, class 1 the
            # second: the float logits overrate class 0 by up to 0.4 quanta a unit and can pick it although class
            # 1 wins exactly. This needs more units than the certifier's final ulp steps cover, so this flavour
            # has m = 8..16 (d = 1 keeps the enumeration trivial).
            d, m = 1, int(rng.integers(8, 17))
            half = m // 2
            h = np.concatenate([rng.uniform(0.55, 0.65, size=half), rng.uniform(0.35, 0.45, size=m - half)])
            W, b = h[:, None], np.zeros(m)
            V = np.zeros((k, m))
            V[0, :half] = rng.random(half) < 0.8
            V[1, half:] = rng.random(m - half) < 0.8
            V[2:] = rng.integers(-1, 2, size=(k - 2, m))
            V, b2 = V * QUANTUM, rng.integers(-1, 2, size=k) * QUANTUM
            X = np.array([[1.0], [float(rng.uniform(0.9, 1.1))]])
    elif family == "huge":
        flavor = ("W", "overflow", "V", "both")[seed % 4]
        W, b, V, b2 = _normal_weights(rng, d, m, k)
        s = float(rng.choice([1e298, 1e300, 1e303, 1e306]))
        if flavor == "W":
            W, b = W * s, b * s
        elif flavor == "V":
            V, b2 = V * s, b2 * s
        elif flavor == "both":
            s = float(rng.choice([1e150, 1e155, 1e160]))
            W, b, V, b2 = W * s, b * s, V * s, b2 * 1e300  # logits ~ s^2 >= 1e300: some overflow
        else:
            # the logits at the examples overflow float64 (~1e306 hidden values times V ~ 1e5): a certificate
            # cannot come from computed logits here
            s = float(rng.choice([1e4, 1e6, 1e8]))
            W, b, V, b2 = W * 1e306, b * 1e306, V * s, b2 * 1e300
        flavor = f"{flavor}@{s:g}"
        kw = {"may_refuse": True}
    elif family == "tight":
        # One hidden unit, active on the whole ball (a large bias), with |W_1i| all equal: the margin is affine on
        # the ball, its exact maximum is f_j(x) - f_y(x) + eps |v| ||W_1||_1, and every method's bound equals it up
        # to rounding (sdp: (1/4) S = |v| ||W_1||_1; lp: exact on active units; spectral and Frobenius:
        # sqrt(d) ||W_1||_2 = ||W_1||_1 for equal magnitudes). So a missing rounding or underflow term shows here.
        a, c = TIGHT_SCALES[seed % len(TIGHT_SCALES)]
        flavor = f"2^{a},2^{c}"
        m = 1
        signs = rng.choice([-1.0, 1.0], size=(1, d))
        bias = np.array([d * (float(np.abs(X).max()) + 64.0)])  # active for every eps <= 64
        V0, b20 = rng.normal(size=(k, 1)), rng.normal(size=k)
        W, b, V, b2 = np.ldexp(signs, a), np.ldexp(bias, a), np.ldexp(V0, c), np.ldexp(b20, a + c)
    else:  # mixed
        flavor = "1e200/1/1e-200"
        W, b, V, b2 = _normal_weights(rng, d, m, k)
        mags = np.array([1e200, 1.0, 1e-200])
        W, b, V, b2 = (a * mags[rng.integers(0, 3, size=a.shape)] for a in (W, b, V, b2))
        kw = {"may_refuse": True}
    return FuzzCase(family=family, flavor=flavor, seed=seed, activation=activation,
                    W=np.asarray(W, float), b=np.asarray(b, float), V=np.asarray(V, float),
                    b2=np.asarray(b2, float), X=np.asarray(X, float), **kw)


# ----------------------------------------------------------------------------------------------- exact arithmetic
def _fractions(a: np.ndarray) -> list:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return [Fraction(float(v)) for v in a]
    return [[Fraction(float(v)) for v in row] for row in a]


def _mpf(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


class ExactNet:
    """The network ``V σ(W x + b) + b2`` with its float64 weights read as exact rationals.

    ``margins(x, y)`` returns ``{j: f_j(x) - f_y(x)}`` for a rational point x: exact ``Fraction`` values for ReLU;
    for tanh / sigmoid, mpmath values computed from the exact pre-activations at 50 digits, together with a bound on
    their error (``slack``) so that comparisons with a float are decided correctly."""

    def __init__(self, net: TwoLayerNet) -> None:
        self.activation = net.activation
        self.d, self.m, self.k = net.d, net.m, net.k
        self.W, self.b, self.V, self.b2 = (_fractions(a) for a in (net.W, net.b, net.V, net.b2))

    def preactivations(self, x: Sequence[Fraction]) -> list:
        return [sum((w * xi for w, xi in zip(row, x)), Fraction(0)) + bk for row, bk in zip(self.W, self.b)]

    def logits(self, x: Sequence[Fraction]) -> tuple[list, list]:
        """(logits, magnitudes): magnitudes[j] = sum_k |V_jk h_k| + |b2_j| (to size the mpmath slack)."""
        z = self.preactivations(x)
        if self.activation == "relu":
            h = [zk if zk > 0 else Fraction(0) for zk in z]
            out = [sum((v * hk for v, hk in zip(row, h)), Fraction(0)) + c for row, c in zip(self.V, self.b2)]
            mag = [sum((abs(v * hk) for v, hk in zip(row, h)), Fraction(0)) + abs(c) for row, c in zip(self.V, self.b2)]
            return out, mag
        with mpmath.workdps(_MP_DIGITS + 10):
            zm = [_mpf(zk) for zk in z]
            if self.activation == "tanh":
                h = [mpmath.tanh(zk) for zk in zm]
            else:
                h = [1 / (1 + mpmath.exp(-zk)) for zk in zm]
            out = [mpmath.fsum(_mpf(v) * hk for v, hk in zip(row, h)) + _mpf(c) for row, c in zip(self.V, self.b2)]
            mag = [mpmath.fsum(abs(_mpf(v) * hk) for v, hk in zip(row, h)) + abs(_mpf(c))
                   for row, c in zip(self.V, self.b2)]
        return out, mag

    def margins(self, x: Sequence[Fraction], y: int) -> tuple[dict, dict]:
        """({j: f_j(x) - f_y(x)}, {j: an upper bound on the evaluation error of that value}) for j != y."""
        f, mag = self.logits(x)
        values = {j: f[j] - f[y] for j in range(self.k) if j != y}
        if self.activation == "relu":
            return values, {j: Fraction(0) for j in values}
        # 50 significant digits on every term; 1e-40 of the magnitudes is far above the accumulated error
        return values, {j: (mag[j] + mag[y]) * mpmath.mpf("1e-40") for j in values}

    def argmax(self, x: Sequence[Fraction]) -> int:
        f, _ = self.logits(x)
        return max(range(self.k), key=lambda j: (f[j], -j))  # the first of tied maxima, as numpy's argmax


def bound_covers(bound: float, value, slack=0) -> bool:
    """Whether the float ``bound`` is >= the exact ``value`` (a Fraction, or an mpmath value known within ``slack``).
    NaN never covers: a NaN is not an upper bound on anything."""
    bound = float(bound)
    if bound != bound:
        return False
    if bound == float("inf"):
        return True
    if bound == float("-inf"):
        return False
    if isinstance(value, Fraction):
        return Fraction(bound) >= value
    return mpmath.mpf(bound) >= value + slack  # the mpmath value is only known to within slack: be strict


def labelled_examples(case: FuzzCase, exact: ExactNet) -> list[tuple[np.ndarray, int, str]]:
    """(x, y, how) triples: each input with its exact label (argmax of the exact logits), and, where the float64
    logits pick a different class (a rounding trap, e.g. subnormal logits), also with that float label."""
    out = []
    for x in case.X:
        xf = [Fraction(float(v)) for v in x]
        y_exact = exact.argmax(xf)
        out.append((x.copy(), y_exact, "exact-label"))
        with np.errstate(all="ignore"):  # the test's own float evaluation; the certifier is not under this
            z = case.W @ x + case.b
            h = np.maximum(z, 0.0) if case.activation == "relu" else (
                np.tanh(z) if case.activation == "tanh" else 1.0 / (1.0 + np.exp(-z)))
            logits = case.V @ h + case.b2
        if np.all(np.isfinite(logits)):
            y_float = int(np.argmax(logits))
            if y_float != y_exact:
                out.append((x.copy(), y_float, "float-label"))
    return out


# ----------------------------------------------------------------------------------------------- oracles
def _log2_floor(q: Fraction) -> int:
    """An integer e with 2^(e-1) < |q| < 2^(e+1) (q != 0): q / 2^e lies in (1/2, 2)."""
    return abs(q.numerator).bit_length() - q.denominator.bit_length()


def _to_float(q: Fraction, flush_below: float = 1e-250) -> float:
    """q as a float (|q| < 2 here); entries below 1e-250 are flushed to 0 so the LP solver sees clean data (the
    reference net only proposes points, so this cannot make a test pass wrongly)."""
    value = float(q)
    return 0.0 if abs(value) < flush_below else value


def ball_reference_net(exact: ExactNet, x: Sequence[Fraction], eps: Fraction, box01: bool = False
                       ) -> tuple[TwoLayerNet, list[Fraction]]:
    """A float network g over u in [-1, 1]^d (``box01``: [0, 1]^d) with g(u) ≈ 2^-E f(x + eps u)
    (``box01``: 2^-E f(x + eps (2u - 1))) and weights of order one. Returns (g, (offset, step, E)): the ball point
    of u is offset + step * u, exactly, in Fractions (see ``_point``).

    ReLU units are rescaled by powers of two (compensated in V) so that every row is of order one; for tanh / sigmoid
    only rows beyond 2^900 are scaled down (they are saturated anyway). V and b2 share one power of two."""
    W_rows, b_rows, shifts = [], [], []
    offset = [xi - eps if box01 else xi for xi in x]
    step = [2 * eps if box01 else eps] * exact.d
    for row, bk in zip(exact.W, exact.b):
        a = [w * s for w, s in zip(row, step)]
        c = sum((w * o for w, o in zip(row, offset)), Fraction(0)) + bk
        nonzero = [abs(v) for v in (*a, c) if v != 0]
        e = _log2_floor(max(nonzero)) if nonzero else 0
        shift = e if exact.activation == "relu" else max(e - 900, 0)
        scale = Fraction(2) ** -shift
        W_rows.append([_to_float(v * scale) for v in a])
        b_rows.append(_to_float(c * scale))
        shifts.append(shift)
    V_scaled = [[v * Fraction(2) ** s for v, s in zip(row, shifts)] for row in exact.V]
    nonzero = [abs(v) for row in V_scaled for v in row if v != 0] + [abs(c) for c in exact.b2 if c != 0]
    E = _log2_floor(max(nonzero)) if nonzero else 0
    down = Fraction(2) ** -E
    V_ref = [[_to_float(v * down) for v in row] for row in V_scaled]
    b2_ref = [_to_float(c * down) for c in exact.b2]
    ref = TwoLayerNet(np.array(W_rows), np.array(b_rows), np.array(V_ref), np.array(b2_ref), exact.activation)
    return ref, (offset, step, E)


def _point(mapping, u: np.ndarray, box01: bool) -> list[Fraction]:
    """The exact ball point x + eps u (or x - eps + 2 eps u) of a float u, clipped into the box first: every
    returned point lies in the closed l_inf ball exactly."""
    offset, step, _ = mapping
    lo, hi = (0.0, 1.0) if box01 else (-1.0, 1.0)
    u = np.clip(np.asarray(u, dtype=np.float64), lo, hi)
    return [o + s * Fraction(float(ui)) for o, s, ui in zip(offset, step, u)]


def relu_worst_points(exact: ExactNet, x: Sequence[Fraction], y: int, eps: Fraction) -> list[list[Fraction]]:
    """The maximisers of f_j - f_y (every j != y) over the ball by activation-pattern enumeration
    (``reference.relu_max_margin_enum``, one LP per pattern) on the conditioned net, as exact points of the ball;
    for d = 1 also the ends of the interval and every kink inside it (exact; the only candidates for m > 6).

    Also checks the oracle: the exact margin at each returned point matches the LP's optimum (in the conditioned
    units, to 1e-6 of the terms' magnitude), so a broken mapping cannot silently weaken the test."""
    if eps == 0:
        return [list(x)]
    points = []
    if exact.d == 1:
        # One input: the margin is piecewise linear in x' with kinks where a unit switches, so its maximum over
        # the interval is attained at an end or a kink, all of them exact rationals: the exact maximiser, without
        # solving anything (and without 2^m patterns for the m = 16 "quanta" nets).
        lo, hi = x[0] - eps, x[0] + eps
        kinks = [-bk / row[0] for row, bk in zip(exact.W, exact.b) if row[0] != 0]
        points += [[t] for t in (lo, hi, *(t for t in kinks if lo < t < hi))]
        if exact.m > 6:
            return points
    ref, mapping = ball_reference_net(exact, x, eps)
    E = mapping[2]
    for j in range(exact.k):
        if j == y:
            continue
        value, u = relu_max_margin_enum(ref, np.zeros(exact.d), 1.0, j, y)
        point = _point(mapping, u, box01=False)
        margins, _ = exact.margins(point, y)
        f, mag = exact.logits(point)
        scale = Fraction(2) ** -E
        got = float(margins[j] * scale)
        size = float((mag[j] + mag[y]) * scale)
        assert abs(got - value) <= 1e-6 * (1.0 + size), (
            f"reference LP disagrees with the exact margin at its maximiser: LP {value!r}, exact {got!r} "
            f"(conditioned units, j={j}, y={y}, eps={float(eps)!r})")
        points.append(point)
    return points


def smooth_worst_points(exact: ExactNet, x: Sequence[Fraction], y: int, eps: Fraction, grid: int = 0,
                        starts: int = 3, pgd_steps: int = 40, pgd_restarts: int = 2, seed: int = 0
                        ) -> list[list[Fraction]]:
    """Candidate worst points of a tanh / sigmoid net over the ball, as exact points of the ball: the best point of
    a dense grid per class j (as in ``reference.smooth_max_margin_lower``), L-BFGS-B from the ``starts`` best grid
    points per j, and ``sdpcert.attacks.pgd`` (margin loss) on the conditioned net over [0, 1]^d (where PGD's
    [0, 1] box is exactly the ball)."""
    if eps == 0:
        return [list(x)]
    ref, mapping = ball_reference_net(exact, x, eps, box01=True)
    d = exact.d
    grid = grid or {1: 201, 2: 41, 3: 15}[d]
    axes = [np.linspace(0.0, 1.0, grid)] * d
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    with np.errstate(all="ignore"):  # the oracle's own float evaluation of saturated units
        out = ref.forward(pts)
    points = [list(x)]
    for j in range(exact.k):
        if j == y:
            continue
        margins = out[:, j] - out[:, y]
        order = np.argsort(margins)
        points.append(_point(mapping, pts[order[-1]], box01=True))

        def neg_margin(u: np.ndarray, j=j) -> float:
            with np.errstate(all="ignore"):
                o = ref.forward(np.clip(u, 0.0, 1.0))
            return -float(o[j] - o[y])

        for start in pts[order[-starts:]]:
            res = minimize(neg_margin, start, method="L-BFGS-B", bounds=[(0.0, 1.0)] * d)
            points.append(_point(mapping, res.x, box01=True))
    X_adv, _ = pgd(ref, np.full((1, d), 0.5), np.array([y]), 0.5, steps=pgd_steps, restarts=pgd_restarts,
                   loss="margin", seed=seed)
    points.append(_point(mapping, X_adv[0], box01=True))
    return points


def exact_worst_margin(exact: ExactNet, points: Sequence[Sequence[Fraction]], y: int):
    """(value, slack, point, j): the largest exact margin max_{j != y} f_j - f_y over the given points. A class whose
    output row and bias equal the label's has margin exactly 0 everywhere: reported as the exact Fraction 0 (an
    mpmath value with its slack cannot show that a bound of, say, 1e-322 covers it)."""
    best = None
    for p in points:
        margins, slack = exact.margins(p, y)
        for j, v in margins.items():
            if exact.V[j] == exact.V[y] and exact.b2[j] == exact.b2[y]:
                v, slack = Fraction(0), {**slack, j: 0}
            if best is None or v > best[0]:
                best = (v, slack[j], p, j)
    return best


# ----------------------------------------------------------------------------------------------- radii
def bits_of_float(value: float) -> int:
    """The IEEE bit pattern of a non-negative double as an integer (monotone in the value)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def float_from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", int(bits)))[0]


def largest_certified_radius(certifier, x: np.ndarray, y: int, method: str, big: float = 2.0 ** 40
                             ) -> Optional[float]:
    """The largest float eps in [0, big] at which ``certifier`` certifies (x, y) with ``method``, by bisection on
    the bit patterns (about 62 certify calls); None if it does not certify at eps = 0, ``big`` if it certifies
    there. Invariant: the returned radius itself was certified (even if certification were not monotone in eps)."""
    X, labels = np.asarray(x, dtype=np.float64)[None, :], np.array([y])

    def certified(eps: float) -> bool:
        return bool(certifier.certify(X, labels, eps, method=method).certified[0])

    if not certified(0.0):
        return None
    if certified(big):
        return big
    lo, hi = 0, bits_of_float(big)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if certified(float_from_bits(mid)):
            lo = mid
        else:
            hi = mid
    return float_from_bits(lo)
