"""Independent reference implementations used by the core's tests.

Nothing here calls ``sdpcert._core``: every function rebuilds its answer from the math of docs/design.md §2 with NumPy, SciPy,
cvxpy/Clarabel, SDPA or mpmath, so that a test comparing the core against it can fail.

- ``pair_matrix_ref``: the D×D pair matrix M(v) − diag(c), built block by block from A = Wᵀ diag(v).
- ``box_qp_max``: max of yᵀMy over y ∈ {−1, 1}^D by enumeration (for a zero-diagonal M the box maximum is
  attained at a vertex, since yᵀMy is affine in each coordinate separately).
- ``sdp_value_clarabel`` / ``sdp_value_sdpa``: the pair SDP max ⟨M, P⟩ s.t. P ⪰ 0, diag(P) ≤ 1 by two
  interior-point solvers.
- ``lambda_max_mp``: λmax(M(Vi − Vj) − diag c) in high precision (mpmath), with v formed exactly from the floats.
- ``relu_max_margin_enum`` / ``relu_max_margin_milp``: the exact maximum of f_i − f_j over an ℓ∞ ball for a ReLU
  network, by enumerating activation patterns (one LP each) or by a big-M MILP.
- ``smooth_max_margin_lower``: a lower bound on that maximum for sigmoid/tanh networks (grid + local search).
- ``relu_max_margin_enum_box`` / ``smooth_max_margin_lower_box``: the same over the ball intersected with an input
  box [lo, hi] (the set ``Certifier(net, input_domain=(lo, hi))`` certifies), and ``exact_margin``: f_i − f_j at a
  point in exact rational arithmetic (``fractions.Fraction``) from the float weights.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp, minimize


# ------------------------------------------------------------------------------------------------ pair matrix
def pair_matrix_ref(W: np.ndarray, v: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """M(v) − diag(c) of docs/design.md §2, blocks ordered (1, s (m), t (d)), from A = Wᵀ diag(v) (d × m)."""
    W = np.asarray(W, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    m, d = W.shape
    A = W.T @ np.diag(v)                     # d × m
    A1 = A @ np.ones(m)                      # d
    D = 1 + m + d
    M = np.zeros((D, D))
    M[1 + m:, 0] = A1
    M[0, 1 + m:] = A1
    M[1 + m:, 1:1 + m] = A
    M[1:1 + m, 1 + m:] = A.T
    if c is not None:
        M -= np.diag(np.asarray(c, dtype=np.float64))
    return M


def box_qp_max(M: np.ndarray) -> tuple[float, np.ndarray]:
    """max_{y ∈ {−1,1}^D} yᵀ M y by enumeration (y0 = 1 without loss: yᵀMy is even in y). D ≤ ~20."""
    D = M.shape[0]
    if D > 21:
        raise ValueError(f"box_qp_max enumerates 2^(D-1) vertices; D = {D} is too large")
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=D - 1)))
    Y = np.hstack([np.ones((len(signs), 1)), signs])
    vals = np.einsum("ij,jk,ik->i", Y, M, Y)
    best = int(np.argmax(vals))
    return float(vals[best]), Y[best]


# ------------------------------------------------------------------------------------------------ pair SDP
def sdp_value_clarabel(M: np.ndarray, tol: float = 1e-10) -> float:
    """max ⟨M, P⟩ s.t. P ⪰ 0, diag(P) ≤ 1, by cvxpy with the Clarabel interior-point solver (tight tolerances)."""
    import cvxpy as cp

    D = M.shape[0]
    P = cp.Variable((D, D), symmetric=True)
    prob = cp.Problem(cp.Maximize(cp.trace(M @ P)), [P >> 0, cp.diag(P) <= 1])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=500)
    if prob.status != cp.OPTIMAL:
        raise RuntimeError(f"Clarabel did not solve the reference SDP: status {prob.status}")
    return float(prob.value)


def sdp_value_sdpa(M: np.ndarray, eps: float = 1e-8) -> tuple[float, float]:
    """The same SDP by SDPA (sdpa-python), in SeDuMi form: min ⟨−M, P⟩ s.t. diag(P) = 1, P ⪰ 0.

    (diag(P) = 1 and diag(P) ≤ 1 give the same value for zero-diagonal M; docs/design.md §2.) Returns (midpoint, half
    width) of SDPA's primal and dual objectives: with both iterates feasible the value lies in that interval.
    (Tighter ``eps`` than ~1e-8 makes SDPA stop at "pdFEAS" with no better answer.)"""
    import warnings

    import scipy.sparse as sp
    import sdpap

    D = M.shape[0]
    c = sp.csc_matrix(-np.asarray(M, dtype=np.float64).reshape(-1, order="F")).T
    rows = np.arange(D)
    A = sp.csc_matrix((np.ones(D), (rows, rows * D + rows)), shape=(D, D * D))
    b = sp.csc_matrix(np.ones((D, 1)))
    K, J = sdpap.SymCone(s=(D,)), sdpap.SymCone(f=D)
    with warnings.catch_warnings():
        # sdpa-python re-checks feasibility with ARPACK afterwards and warns when that check does not converge;
        # the solver's own result is unaffected.
        warnings.filterwarnings("ignore", message="Python recalculation of primal", category=RuntimeWarning)
        _, _, info, _, _ = sdpap.solve(A, b, c, K, J, {"print": "no", "epsilonStar": eps, "epsilonDash": eps})
    if info["phasevalue"] not in ("pdOPT", "pdFEAS"):
        raise RuntimeError(f"SDPA did not solve the reference SDP: phase {info['phasevalue']}")
    lo, hi = -float(info["primalObj"]), -float(info["dualObj"])
    return (lo + hi) / 2.0, abs(hi - lo) / 2.0


# ------------------------------------------------------------------------------------------------ high precision
def lambda_max_mp(W: np.ndarray, Vi: np.ndarray, Vj: np.ndarray, c: np.ndarray, dps: int = 40) -> float:
    """λmax(M(Vi − Vj) − diag c) with v = Vi − Vj and all products formed in ``dps``-digit arithmetic (mpmath).

    Returns a float64 rounded *down* from the high-precision value, so ``bound >= lambda_max_mp(...)`` is a
    meaningful check of a claimed upper bound (the eigensolver's own error at 40 digits is ~1e-35 relative)."""
    import mpmath

    with mpmath.workdps(dps):
        m, d = W.shape
        D = 1 + m + d
        v = [mpmath.mpf(float(a)) - mpmath.mpf(float(b)) for a, b in zip(Vi, Vj)]
        Mmp = mpmath.zeros(D, D)
        for l in range(d):
            col_sum = mpmath.mpf(0)
            for k in range(m):
                a = mpmath.mpf(float(W[k, l])) * v[k]
                Mmp[1 + m + l, 1 + k] = a
                Mmp[1 + k, 1 + m + l] = a
                col_sum += a
            Mmp[1 + m + l, 0] = col_sum
            Mmp[0, 1 + m + l] = col_sum
        for k in range(D):
            Mmp[k, k] -= mpmath.mpf(float(c[k]))
        E = mpmath.eigsy(Mmp, eigvals_only=True)
        top = max(E)
        return float(np.nextafter(float(top), -np.inf))


# ------------------------------------------------------------------------------------------------ exact search
def _interval_preactivations(net, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    W, b = np.asarray(net.W), np.asarray(net.b)
    center = W @ x + b
    radius = eps * np.abs(W).sum(axis=1)
    return center - radius, center + radius


def _relu_max_margin_patterns(net, i: int, j: int, low: np.ndarray, high: np.ndarray, zl: np.ndarray,
                               zh: np.ndarray) -> tuple[float, np.ndarray]:
    """Max of f_i − f_j over the box [low, high] by activation patterns, one LP each; units whose pre-activation
    interval [zl, zh] over the box fixes their state get a single pattern bit (only a speed-up: the patterns skipped
    have empty regions up to their boundary, where both linear pieces agree)."""
    W, b = np.asarray(net.W), np.asarray(net.b)
    v = np.asarray(net.V[i] - net.V[j])
    const = float(net.b2[i] - net.b2[j])
    bounds = list(zip(low, high))
    choices = [(1.0,) if zl[k] >= 0 else (0.0,) if zh[k] <= 0 else (0.0, 1.0) for k in range(W.shape[0])]
    best, best_x = -np.inf, None
    for pattern in itertools.product(*choices):
        a = np.array(pattern)
        # a_k = 1: W_k x' + b_k >= 0  <=>  -W_k x' <= b_k ;  a_k = 0: W_k x' <= -b_k
        sign = np.where(a > 0, -1.0, 1.0)
        A_ub = sign[:, None] * W
        b_ub = np.where(a > 0, b, -b)
        w = a * v
        res = linprog(-(W.T @ w), A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status == 2:  # infeasible pattern
            continue
        if res.status != 0:
            raise RuntimeError(f"linprog failed on pattern {pattern}: {res.message}")
        val = float(w @ (W @ res.x + b) + const)
        if val > best:
            best, best_x = val, res.x
    return best, best_x


def relu_max_margin_enum(net, x: np.ndarray, eps: float, i: int, j: int) -> tuple[float, np.ndarray]:
    """Exact max over ‖x' − x‖∞ ≤ ε of f_i(x') − f_j(x') for a ReLU TwoLayerNet.

    On the region where the activation pattern is a ∈ {0,1}^m (box ∩ {W_k x' + b_k ≥ 0 iff a_k = 1}) the margin
    is the linear function (a∘v)ᵀ(W x' + b) + b2_i − b2_j, v = V_i − V_j; the regions cover the box, so the
    maximum is the largest LP optimum over feasible patterns (HiGHS). Returns (value, maximiser)."""
    if net.activation != "relu":
        raise ValueError("relu_max_margin_enum needs a ReLU network")
    lo, hi = _interval_preactivations(net, x, eps)
    return _relu_max_margin_patterns(net, i, j, x - eps, x + eps, lo, hi)


def relu_max_margin_milp(net, x: np.ndarray, eps: float, i: int, j: int) -> tuple[float, np.ndarray]:
    """The same maximum by a big-M MILP (scipy.optimize.milp / HiGHS), variables (x', z, a):
    z ≥ W x' + b, z ≥ 0, z ≤ W x' + b − l (1 − a), z ≤ u a, a ∈ {0,1}^m, with [l, u] interval bounds on the
    pre-activations over the box. The binary pattern it picks is then re-solved as an LP (polishing away the MIP
    feasibility tolerance), and the value returned is the network's own margin at that LP's maximiser."""
    W, b = np.asarray(net.W), np.asarray(net.b)
    v = np.asarray(net.V[i] - net.V[j])
    m, d = W.shape
    lo, hi = _interval_preactivations(net, x, eps)
    n = d + 2 * m
    cost = np.zeros(n)
    cost[d:d + m] = -v
    Im = np.eye(m)
    Zdm = np.zeros((m, m))
    rows, lbs, ubs = [], [], []
    # z - W x' >= b
    rows.append(np.hstack([-W, Im, Zdm])); lbs.append(b); ubs.append(np.full(m, np.inf))
    # z - W x' - l_k a_k <= b - l_k     (z <= W x' + b - l (1 - a))
    rows.append(np.hstack([-W, Im, -np.diag(lo)])); lbs.append(np.full(m, -np.inf)); ubs.append(b - lo)
    # z - u_k a_k <= 0
    rows.append(np.hstack([np.zeros((m, d)), Im, -np.diag(np.maximum(hi, 0.0))]))
    lbs.append(np.full(m, -np.inf)); ubs.append(np.zeros(m))
    cons = LinearConstraint(np.vstack(rows), np.concatenate(lbs), np.concatenate(ubs))
    lb = np.concatenate([x - eps, np.zeros(m), np.zeros(m)])
    ub = np.concatenate([x + eps, np.maximum(hi, 0.0), np.ones(m)])
    integrality = np.concatenate([np.zeros(d + m), np.ones(m)])
    res = milp(cost, constraints=cons, bounds=Bounds(lb, ub), integrality=integrality,
               options={"mip_rel_gap": 0.0, "presolve": True})
    if res.status != 0:
        raise RuntimeError(f"milp failed: {res.message}")
    a = np.round(res.x[d + m:])
    # Polish: the LP of that pattern (exact up to LP tolerances).
    sign = np.where(a > 0, -1.0, 1.0)
    lp = linprog(-(W.T @ (a * v)), A_ub=sign[:, None] * W, b_ub=np.where(a > 0, b, -b),
                 bounds=list(zip(x - eps, x + eps)), method="highs")
    if lp.status != 0:
        raise RuntimeError(f"the MILP's pattern {a} is infeasible as an LP: {lp.message}")
    out = net.forward(lp.x)
    return float(out[i] - out[j]), lp.x


def smooth_max_margin_lower(net, x: np.ndarray, eps: float, i: int, j: int, grid: int = 41) -> float:
    """A lower bound on max over the ℓ∞ ball of f_i − f_j (any activation): the best of a dense grid on the box
    followed by L-BFGS-B from the five best grid points. Every value returned is attained at a point of the box."""
    d = net.d
    axes = [np.linspace(xi - eps, xi + eps, grid) for xi in x]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    out = net.forward(pts)
    margins = out[:, i] - out[:, j]
    best = float(margins.max())
    lo, hi = x - eps, x + eps

    def neg_margin(z: np.ndarray) -> float:
        o = net.forward(np.clip(z, lo, hi))
        return -float(o[i] - o[j])

    for start in pts[np.argsort(margins)[-5:]]:
        res = minimize(neg_margin, start, method="L-BFGS-B", bounds=list(zip(lo, hi)))
        z = np.clip(res.x, lo, hi)
        o = net.forward(z)
        best = max(best, float(o[i] - o[j]))
    return best


# ------------------------------------------------------------------------------------------------ input box
def ball_box_bounds(x: np.ndarray, eps: float, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """The ends [max(x − ε, lo), min(x + ε, hi)] of the ball intersected with the box (floats, as a reference: a
    point found inside them is clipped into the exact set by ``clip_into_ball_box``)."""
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), x.shape)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), x.shape)
    return np.maximum(x - eps, lo), np.minimum(x + eps, hi)


def clip_into_ball_box(point: np.ndarray, x: np.ndarray, eps: float, lo, hi) -> list:
    """``point`` as exact Fractions, clipped coordinate by coordinate into {x' : |x' − x| ≤ ε, lo ≤ x' ≤ hi}
    (exactly: the clipping ends are the exact rationals x ± ε, lo, hi)."""
    from fractions import Fraction

    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), x.shape)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), x.shape)
    out = []
    for p, xi, l, h in zip(point, x, lo, hi):
        a = max(Fraction(float(xi)) - Fraction(float(eps)), Fraction(float(l)))
        b = min(Fraction(float(xi)) + Fraction(float(eps)), Fraction(float(h)))
        out.append(min(max(Fraction(float(p)), a), b))
    return out


def exact_margin(net, point, i: int, j: int):
    """f_i(x') − f_j(x') exactly (a Fraction) at a point given as Fractions, for a ReLU TwoLayerNet."""
    from fractions import Fraction

    W, b, V, b2 = (np.asarray(a) for a in (net.W, net.b, net.V, net.b2))
    h = []
    for row, bk in zip(W, b):
        z = sum((Fraction(float(w)) * p for w, p in zip(row, point)), Fraction(float(bk)))
        h.append(max(z, Fraction(0)))
    f_i = sum((Fraction(float(v)) * hk for v, hk in zip(V[i], h)), Fraction(float(b2[i])))
    f_j = sum((Fraction(float(v)) * hk for v, hk in zip(V[j], h)), Fraction(float(b2[j])))
    return f_i - f_j


def relu_max_margin_enum_box(net, x: np.ndarray, eps: float, i: int, j: int, lo, hi) -> tuple[float, np.ndarray]:
    """Exact max of f_i(x') − f_j(x') over {‖x' − x‖∞ ≤ ε, lo ≤ x' ≤ hi} for a ReLU TwoLayerNet, by activation-pattern
    enumeration with one LP per pattern over the box [max(x − ε, lo), min(x + ε, hi)] (as
    ``relu_max_margin_enum``, whose regions cover any box). Returns (value, maximiser)."""
    if net.activation != "relu":
        raise ValueError("relu_max_margin_enum_box needs a ReLU network")
    W, b = np.asarray(net.W), np.asarray(net.b)
    low, high = ball_box_bounds(x, eps, lo, hi)
    center, radius = W @ ((low + high) / 2) + b, np.abs(W) @ ((high - low) / 2)
    return _relu_max_margin_patterns(net, i, j, low, high, center - radius, center + radius)


def smooth_max_margin_lower_box(net, x: np.ndarray, eps: float, i: int, j: int, lo, hi, grid: int = 41) -> float:
    """A lower bound on max f_i − f_j over the ball intersected with [lo, hi] (any activation): a dense grid on the
    box followed by L-BFGS-B from the five best grid points; every value is attained at a point of the set."""
    low, high = ball_box_bounds(x, eps, lo, hi)
    axes = [np.linspace(a, b, grid) for a, b in zip(low, high)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(x))
    pts = np.clip(pts, low, high)
    out = net.forward(pts)
    margins = out[:, i] - out[:, j]
    best = float(margins.max())

    def neg_margin(z: np.ndarray) -> float:
        o = net.forward(np.clip(z, low, high))
        return -float(o[i] - o[j])

    for start in pts[np.argsort(margins)[-5:]]:
        res = minimize(neg_margin, start, method="L-BFGS-B", bounds=list(zip(low, high)))
        o = net.forward(np.clip(res.x, low, high))
        best = max(best, float(o[i] - o[j]))
    return best
