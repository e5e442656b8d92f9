"""Standing fuzz suite: every certificate of every method on tiny networks at the edges of floating point is checked
against the exact worst point of its l_inf ball.

What a certificate claims: ``worst_margin >= max_{j != y} max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` for the
exact network whose weights are the stored doubles (certified iff < 0). Why the checks here prove or refute that:

- ReLU nets (exact). For each example and each method, the largest certified radius r is found by bisection
  (``fuzz_nets.largest_certified_radius``), and the certificate is checked at 0.25 r, 0.5 r, r, 0.999999 r and at
  fixed radii from 0 to 0.5. The oracle is activation-pattern enumeration with one LP per pattern
  (``reference.relu_max_margin_enum``) on a power-of-two-conditioned copy of the net (for d = 1 also every kink
  of the piecewise-linear margin, which makes it exact without any LP); its maximiser is mapped into the ball
  exactly, and ``f_j(x*) - f_y(x*)`` is evaluated in ``fractions.Fraction`` from the float weights.
  The assertion ``Fraction(worst_margin) >= that value`` has no tolerance: a failure is a point of the ball, given
  exactly, where the network does worse than the proven bound says it can.
- Every example whose exact margin at x itself is >= 0 (misclassified or tied in exact arithmetic, even if the float
  logits say otherwise) must never be certified, at any radius, by any method; nor any example whose exact
  pre-activations or logits at x exceed the largest double (they overflow: refuse, or do not certify).
- tanh / sigmoid nets (attacks). The oracle is a grid, L-BFGS-B multistart and ``sdpcert.attacks.pgd``; the margin at
  each point found is evaluated at 50 digits from the exact pre-activations (mpmath). A certified example's attack
  margin must stay < 0 and below the bound.
- Families (``fuzz_nets.FAMILIES``): normal, pow2 (2^±500 scalings), structured, small_int, subnormal, huge (near
  1e300, some logits overflow), mixed (1e200 and 1e-200 in one matrix), tight (affine on the ball, where every
  method's bound equals the exact worst margin up to rounding, down to subnormal logits: a forgotten rounding or
  underflow term shows at the ulp level). Only for huge and mixed may the certifier
  answer with an ``SdpcertError``; any other exception, and any warning (pytest runs with filterwarnings=error, so
  a numpy overflow RuntimeWarning inside the certifier fails the test), is a finding.
- pow2 ReLU nets are the same classifier as their unscaled base net, so no method may certify a larger radius for
  them (beyond the SDP's relative tolerance): a radius that grows with an exact rescaling is an underflow or
  overflow in a proof (audit r2).

The default run is seeded and fast (under a minute); ``-m slow`` runs many more cases of every family.
"""

from __future__ import annotations

import traceback
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError
from sdpcert.certify import methods_for

from fuzz_nets import (FAMILIES, ExactNet, FuzzCase, bound_covers, exact_worst_margin, labelled_examples,
                       largest_certified_radius, make_case, relu_worst_points, smooth_worst_points)

#: Radii checked for every example and method, whatever its certified radius: 0, the smallest subnormal, a tiny
#: normal, and ordinary radii.
FIXED_RADII = (0.0, 2.0 ** -1074, 1e-300, 1e-9, 0.05, 0.5)
#: Fractions of each method's largest certified radius at which the certificate is checked.
RADIUS_FRACTIONS = (0.25, 0.5, 1.0, 0.999999)
#: Smooth nets: fewer radii by default (each oracle call runs a grid, L-BFGS-B and PGD).
SMOOTH_FIXED_RADII = (0.0, 1e-300, 0.05)
SMOOTH_RADIUS_FRACTIONS = (0.5, 1.0)

RELU_SEEDS = range(3)
SMOOTH_SEEDS = range(1)
SLOW_RELU_SEEDS = range(3, 30)
SLOW_SMOOTH_SEEDS = range(1, 8)

#: The largest double, exactly.
DBL_MAX = Fraction(np.finfo(np.float64).max)
#: The SDP's rel_tol is 1e-6: two solves of the same problem at different scalings may differ by that much.
SCALE_INVARIANCE_SLACK = 1e-5


def _as_fractions(x: np.ndarray) -> list[Fraction]:
    return [Fraction(float(v)) for v in x]


def _describe(case: FuzzCase, method: str, eps: float, x: np.ndarray, y: int, how: str) -> str:
    return (f"{case.name} method={method} eps={eps!r} x={x.tolist()} y={y} ({how}); "
            f"W={case.W.tolist()} b={case.b.tolist()} V={case.V.tolist()} b2={case.b2.tolist()}")


def check_case(case: FuzzCase, fixed_radii=FIXED_RADII, radius_fractions=RADIUS_FRACTIONS) -> dict:
    """Run every method on every example of ``case`` and check each certificate against the exact oracle.

    A failure of one (example, method) does not stop the others: all failures of the case (broken bounds, and any
    exception other than an allowed ``SdpcertError``, warnings escalated to errors included, with the line that
    raised it) are raised together as one AssertionError, so a report shows every method that goes wrong.
    Returns a summary {"certified": n, "checked": n, "refused": [...]} so callers can see the test did work."""
    summary = {"certified": 0, "checked": 0, "refused": []}
    try:
        net = case.net()
    except SdpcertError as exc:
        if not case.may_refuse:
            raise
        summary["refused"].append(f"TwoLayerNet: {exc}")
        return summary
    exact = ExactNet(net)
    certifier = Certifier(net, threads=1)
    smooth = net.activation != "relu"
    failures = []
    for x, y, how in labelled_examples(case, exact):
        xf = _as_fractions(x)
        at_x, _ = exact.margins(xf, y)
        wrong_at_x = any(v >= 0 for v in at_x.values())
        # numbers at x itself that float64 cannot hold: whatever the certifier computed there, it was not these
        beyond_float = any(_beyond_float(v) for v in (*exact.preactivations(xf), *exact.logits(xf)[0]))
        oracle: dict[float, tuple] = {}  # eps -> exact_worst_margin(...), shared by the methods
        for method in methods_for(net, every=True):
            try:
                _check_method(case, certifier, exact, x, xf, y, how, method, wrong_at_x, beyond_float, at_x, oracle,
                              smooth, fixed_radii, radius_fractions, summary)
            except SdpcertError as exc:
                if not case.may_refuse:
                    failures.append(_failure(method, x, y, exc))
                else:
                    summary["refused"].append(f"{method}: {type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - every one is reported below and fails the test
                failures.append(_failure(method, x, y, exc))
    if failures:
        raise AssertionError(f"{case.name}: {len(failures)} failure(s)\n" + "\n".join(failures))
    return summary


def _beyond_float(value) -> bool:
    """|value| > the largest double, for an exact Fraction or an mpmath value."""
    return abs(value) > (DBL_MAX if isinstance(value, Fraction) else mpmath.mpf(float(DBL_MAX)))


def _failure(method: str, x: np.ndarray, y: int, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" [raised at {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}]" if frames else ""
    if isinstance(exc, AssertionError):
        where = ""
    message = (str(exc).splitlines() or [""])[0]
    return f"  {method} x={x.tolist()} y={y}: {type(exc).__name__}: {message}{where}"


def _check_method(case, certifier, exact, x, xf, y, how, method, wrong_at_x, beyond_float, at_x, oracle, smooth,
                  fixed_radii, radius_fractions, summary) -> None:
    radius = largest_certified_radius(certifier, x, y, method)
    radii = set(fixed_radii)
    if radius is not None:
        radii |= {f * radius for f in radius_fractions}
    for eps in sorted(radii):
        result = certifier.certify(x[None, :], np.array([y]), eps, method=method)
        bound = float(result.worst_margin[0])
        certified = bool(result.certified[0])
        where = _describe(case, method, eps, x, y, how)
        summary["checked"] += 1
        summary["certified"] += certified
        assert bound == bound, f"worst_margin is NaN, not an upper bound: {where}"
        assert not (certified and wrong_at_x), (
            f"certified although the exact margin at x itself is >= 0 (max {float(max(at_x.values()))!r}): {where}")
        assert not (certified and beyond_float), (
            f"certified although a pre-activation or logit at x exceeds the largest double: {where}")
        if eps not in oracle:
            epsf = Fraction(eps)
            points = (smooth_worst_points(exact, xf, y, epsf) if smooth
                      else relu_worst_points(exact, xf, y, epsf)) + [xf]
            oracle[eps] = exact_worst_margin(exact, points, y)
        value, slack, point, j = oracle[eps]
        assert bound_covers(bound, value, slack), (
            f"UNSOUND: proven bound {bound!r} < exact margin {float(value)!r} of class {j} at the ball point "
            f"{[float(p) for p in point]} (exact: {[str(p) for p in point]}): {where}")
        if smooth and certified:
            assert value < 0, f"certified, but the attack reaches margin {float(value)!r}: {where}"


# ----------------------------------------------------------------------------------------------- ReLU, exact
@pytest.mark.parametrize("seed", RELU_SEEDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_relu_certificates_cover_the_exact_worst_point(family, seed):
    case = make_case(family, seed, "relu")
    summary = check_case(case)
    assert summary["checked"] or summary["refused"], case.name


@pytest.mark.parametrize("seed", RELU_SEEDS)
def test_pow2_scaled_relu_net_certifies_no_larger_radius_than_its_unscaled_twin(seed):
    """W, b times 2^a and V times 2^c, b2 times 2^(a+c) is exactly the same ReLU classifier: a proof may lose to
    rounding at the extreme scale, but it may not certify a radius the unscaled net's proof cannot."""
    case = make_case("pow2", seed, "relu")
    net, base = case.net(), case.base_net()
    exact = ExactNet(base)
    scaled_certifier, base_certifier = Certifier(net, threads=1), Certifier(base, threads=1)
    for x, y, how in labelled_examples(case, exact):
        for method in methods_for(net, every=True):
            r_base = largest_certified_radius(base_certifier, x, y, method)
            r_scaled = largest_certified_radius(scaled_certifier, x, y, method)
            where = f"{case.name} method={method} x={x.tolist()} y={y} ({how})"
            if r_base is None:
                assert r_scaled is None, f"the scaled net certifies radius {r_scaled!r}, the unscaled none: {where}"
            elif r_scaled is not None:
                assert r_scaled <= r_base * (1 + SCALE_INVARIANCE_SLACK), (
                    f"the scaled net certifies radius {r_scaled!r} > {r_base!r} of the same unscaled classifier: "
                    f"{where}")


# ----------------------------------------------------------------------------------------------- smooth, attacks
@pytest.mark.parametrize("seed", SMOOTH_SEEDS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("family", FAMILIES)
def test_smooth_certificates_survive_strong_attacks(family, activation, seed):
    case = make_case(family, seed, activation)
    summary = check_case(case, SMOOTH_FIXED_RADII, SMOOTH_RADIUS_FRACTIONS)
    assert summary["checked"] or summary["refused"], case.name


# ----------------------------------------------------------------------------------------------- many more (slow)
def _run_many(cases, **kw) -> tuple[list[str], dict]:
    """Check every case, collecting failures (message per case) instead of stopping at the first."""
    failures, totals = [], {"cases": 0, "checked": 0, "certified": 0, "refused": 0}
    for case in cases:
        totals["cases"] += 1
        try:
            summary = check_case(case, **kw)
        except Exception as exc:  # noqa: BLE001 - collected and reported below: the test still fails
            failures.append(f"{case.name}: {type(exc).__name__}: {str(exc)[:3000]}")
            continue
        totals["checked"] += summary["checked"]
        totals["certified"] += summary["certified"]
        totals["refused"] += len(summary["refused"])
    return failures, totals


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_relu_certificates_cover_the_exact_worst_point_many(family):
    failures, totals = _run_many(make_case(family, seed, "relu") for seed in SLOW_RELU_SEEDS)
    assert not failures, f"{len(failures)} of {totals['cases']} cases fail:\n" + "\n".join(failures)
    assert totals["certified"] or family in ("huge", "mixed"), totals


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("family", FAMILIES)
def test_smooth_certificates_survive_strong_attacks_many(family, activation):
    failures, totals = _run_many((make_case(family, seed, activation) for seed in SLOW_SMOOTH_SEEDS),
                                 fixed_radii=FIXED_RADII, radius_fractions=RADIUS_FRACTIONS)
    assert not failures, f"{len(failures)} of {totals['cases']} cases fail:\n" + "\n".join(failures)
