"""The torch op and the regularizer: values against dense eigh, analytic gradients against finite differences,
warm starts, the training loop, proven bounds against the pair SDP solver, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdpcert import _core
from sdpcert.errors import NonFiniteError, SdpcertError, ShapeError
from sdpcert.torch import (
    DualCertificateRegularizer,
    EigenWarmStart,
    Eigenpairs,
    certified_dual_bounds,
    pair_dual_penalty,
    pair_matrix_torch,
    top_eigenpairs,
)

BACKENDS = ["core", "torch"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(m, d, k=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=torch.float64) / np.sqrt(d)
    V = torch.randn(k, m, generator=g, dtype=torch.float64) / np.sqrt(m)
    return W.to(dtype), V.to(dtype)


def _dense_ref(W, V, c, pairs):
    """D * max(lambda_max, 0) + sum c+ from numpy eigh of the core's dense pair matrix, plus the eigenvalues."""
    W64 = W.detach().double().numpy()
    V64 = V.detach().double().numpy()
    c64 = c.detach().double().numpy()
    D = c64.shape[1]
    vals, eigs = [], []
    for p, (i, j) in enumerate(pairs):
        ev = np.linalg.eigvalsh(_core.pair_matrix(W64, V64[i] - V64[j], c64[p]))
        eigs.append(ev)
        vals.append(D * max(ev[-1], 0.0) + np.maximum(c64[p], 0).sum())
    return np.array(vals), eigs


PAIRS3 = [(0, 1), (2, 0), (1, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
@pytest.mark.parametrize("m,d", [(5, 7), (40, 70)])  # D = 13 (dense) and D = 111 (Lanczos)
def test_values_match_dense_eigh(backend, dtype, rtol, m, d):
    W, V = _net(m, d, seed=m + d, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    c = (0.3 * torch.randn(len(PAIRS3), 1 + m + d, generator=g, dtype=torch.float64)).to(dtype)
    info = {}
    got = pair_dual_penalty(W, V, c, PAIRS3, backend=backend, info=info)
    assert got.dtype == dtype and got.shape == (3,)
    ref, _ = _dense_ref(W, V, c, PAIRS3)
    np.testing.assert_allclose(got.detach().double().numpy(), ref, rtol=rtol, atol=rtol)
    if backend == "core":
        expected = "dense_small" if 1 + m + d < 96 else None
        if expected:
            assert info["status"] == [expected] * 3
        else:
            assert all(s in ("converged", "dense_fallback") for s in info["status"])
            assert int(np.max(info["iterations"])) > 0


def test_torch_pair_matrix_matches_core():
    W, V = _net(4, 6, seed=3)
    c = torch.linspace(-1, 1, 11, dtype=torch.float64)
    M = pair_matrix_torch(W, (V[0] - V[2])[None], c[None])[0]
    np.testing.assert_allclose(M.numpy(), _core.pair_matrix(W.numpy(), (V[0] - V[2]).numpy(), c.numpy()),
                               rtol=1e-14, atol=1e-15)


def _gap_ok_c(W, V, pairs, seed):
    """c with lambda_max > 0 and a clear gap below it for every pair (checked with eigh)."""
    D = 1 + W.shape[0] + W.shape[1]
    g = torch.Generator().manual_seed(seed)
    c = 0.2 * torch.randn(len(pairs), D, generator=g, dtype=torch.float64)
    c[c.abs() < 1e-3] = 0.05  # keep away from the max(c, 0) kink, where finite differences are meaningless
    _, eigs = _dense_ref(W, V, c, pairs)
    for ev in eigs:
        assert ev[-1] > 0.05, "test setup: lambda_max must be clearly positive"
        assert ev[-1] - ev[-2] > 1e-2 * max(1.0, abs(ev[-1])), "test setup: top eigenvalue must be simple"
    return c


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,d", [(4, 5), (30, 70)])  # D = 10 (dense) and D = 101 (Lanczos in the core)
def test_gradcheck(backend, m, d):
    pairs = [(0, 1), (2, 1)] if m > 10 else [(0, 1), (2, 1), (1, 0)]  # (1, 0): V[1] gets + and - contributions
    W, V = _net(m, d, seed=7 + m)
    c = _gap_ok_c(W, V, pairs, seed=11)
    W.requires_grad_(True)
    V.requires_grad_(True)
    c.requires_grad_(True)

    def f(W_, V_, c_):
        return pair_dual_penalty(W_, V_, c_, pairs, backend=backend, tol=1e-12)

    assert torch.autograd.gradcheck(f, (W, V, c), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=m > 10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_lambda_gradient(backend):
    m, d = 5, 6
    W, V = _net(m, d, seed=2)
    D = 1 + m + d
    c = torch.full((2, D), 5.0, dtype=torch.float64)
    c[:, ::3] = 7.0
    pairs = [(0, 1), (1, 2)]
    _, eigs = _dense_ref(W, V, c, pairs)
    assert all(ev[-1] < -1.0 for ev in eigs)
    W.requires_grad_(True)
    V.requires_grad_(True)
    c.requires_grad_(True)
    val = pair_dual_penalty(W, V, c, pairs, backend=backend)
    np.testing.assert_allclose(val.detach().numpy(), c.detach().sum(1).numpy(), rtol=1e-14)
    (val * torch.tensor([1.0, 2.0], dtype=torch.float64)).sum().backward()
    assert torch.count_nonzero(W.grad) == 0 and torch.count_nonzero(V.grad) == 0
    np.testing.assert_array_equal(c.grad.numpy(), np.array([[1.0] * D, [2.0] * D]))


def test_indicator_gradient_for_c():
    """d/dc of sum max(c, 0) is 1[c > 0]; the eigen part is -D u*u (checked here with u from eigh)."""
    m, d = 3, 4
    W, V = _net(m, d, seed=5)
    D = 1 + m + d
    c = torch.tensor([[0.3, -0.2, 0.0, 0.5, -1.0, 0.1, 0.2, -0.4]], dtype=torch.float64, requires_grad=True)
    pair_dual_penalty(W, V, c, [(0, 1)], backend="core").sum().backward()
    A = _core.pair_matrix(W.numpy(), (V[0] - V[1]).numpy(), c.detach()[0].numpy())
    ev, U = np.linalg.eigh(A)
    assert ev[-1] > 0
    want = -D * U[:, -1] ** 2 + (c.detach()[0].numpy() > 0)
    np.testing.assert_allclose(c.grad[0].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cluster_top_eigenvalue(backend):
    """Two identical decoupled copies of a network (block-diagonal W, v = [v0; v0]) give a top eigenvalue of
    multiplicity ~2 (split only through the heavily penalized coordinate 0): value still matches eigh."""
    q, p = 20, 40
    W0, V0 = _net(q, p, seed=9)
    W = torch.block_diag(W0, W0)
    V = torch.cat([V0, V0], dim=1)
    m, d = W.shape
    D = 1 + m + d
    assert D >= 96
    c = torch.zeros(2, D, dtype=torch.float64)
    c[:, 0] = 1e3
    pairs = [(0, 1), (1, 2)]
    _, eigs = _dense_ref(W, V, c, pairs)
    assert all(ev[-1] - ev[-2] < 1e-3 * ev[-1] for ev in eigs), "test setup: top must be a cluster"
    W.requires_grad_(True)
    V.requires_grad_(True)
    c.requires_grad_(True)
    info = {}
    val = pair_dual_penalty(W, V, c, pairs, backend=backend, info=info)
    np.testing.assert_allclose(info["values"], [ev[-1] for ev in eigs], rtol=1e-8)
    val.sum().backward()
    assert all(bool(torch.isfinite(t.grad).all()) for t in (W, V, c))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fully_degenerate_spectrum(backend):
    """v = 0 (equal rows of V) and constant negative c: M - diag c = 0.5 I, every eigenvalue is the top one."""
    m, d = 40, 60
    W, V = _net(m, d, seed=4)
    V = torch.cat([V[:1], V[:1], V[1:2]]).clone().requires_grad_(True)
    c = torch.full((1, 1 + m + d), -0.5, dtype=torch.float64, requires_grad=True)
    val = pair_dual_penalty(W, V, c, [(0, 1)], backend=backend)
    assert val.item() == pytest.approx((1 + m + d) * 0.5, rel=1e-12)
    val.sum().backward()
    assert bool(torch.isfinite(V.grad).all()) and bool(torch.isfinite(c.grad).all())


def test_warm_start_reduces_iterations():
    m, d = 60, 100
    W, V = _net(m, d, k=4, seed=12)
    c = torch.zeros(3, 1 + m + d, dtype=torch.float64)
    pairs = [(0, 1), (1, 2), (2, 3)]
    ws = EigenWarmStart()
    first = pair_dual_penalty(W, V, c, pairs, warm_start=ws)
    it_first = ws.last_iterations.copy()
    assert len(ws) == 3 and ws.calls == 1
    W2 = W + 1e-5 * torch.randn(m, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cold_info = {}
    cold = pair_dual_penalty(W2, V, c, pairs, info=cold_info)
    warm = pair_dual_penalty(W2, V, c, pairs, warm_start=ws)
    assert ws.last_iterations.sum() < it_first.sum()
    assert ws.last_iterations.sum() < np.sum(cold_info["iterations"])
    np.testing.assert_allclose(warm.numpy(), cold.numpy(), rtol=1e-10)
    assert not torch.equal(first, warm)


def test_regularizer_training_loop_and_certificates():
    torch.manual_seed(0)
    k, d, m = 3, 8, 6
    model = torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, k)).double()
    reg = DualCertificateRegularizer(k, d, m, weight=1.0).double()
    assert reg.c.shape == (3, 1 + m + d) and reg.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    X = torch.rand(32, d, dtype=torch.float64)
    y = torch.randint(k, (32,))
    opt = torch.optim.Adam(list(model.parameters()) + list(reg.parameters()), lr=0.05)
    penalties = []
    for _ in range(3):
        opt.zero_grad()
        pen = reg(model[0].weight, model[2].weight)
        loss = torch.nn.functional.cross_entropy(model(X), y) + pen
        loss.backward()
        assert reg.c.grad is not None and bool(torch.isfinite(reg.c.grad).all())
        opt.step()
        penalties.append(pen.item())
    with torch.no_grad():
        penalties.append(reg(model[0].weight, model[2].weight).item())
    assert penalties[-1] < penalties[0]
    assert reg.last_info["status"] == ["dense_small"] * 3

    # proven bounds from the trained c are >= the SDP value (its lower bound); the proven lambda_max bound is >= the
    # Lanczos estimate (which is a lower bound on lambda_max and must never be reported)
    W = model[0].weight.detach().numpy()
    V = model[2].weight.detach().numpy()
    sdp = _core.solve_pair_sdps(W, V, reg.pairs)
    upper = reg.certified_upper(model[0].weight, model[2].weight)
    assert upper.shape == (3,) and np.isfinite(upper).all()
    assert np.all(upper >= sdp["lower"])
    reg.per_pair(model[0].weight.detach(), model[2].weight.detach())
    lam_bound = certified_dual_bounds(W, V, reg.c, reg.pairs)["lambda_bound"]
    assert np.all(lam_bound >= reg.last_info["values"])
    assert np.all(lam_bound <= reg.last_info["values"] + 1e-6 * (1 + np.abs(reg.last_info["values"])))

    # with the SDP's own dual c, the proven bound is as tight as the solver's upper bound
    with torch.no_grad():
        reg.c.copy_(torch.from_numpy(sdp["dual"]))
    upper = reg.certified_upper(W, V)
    np.testing.assert_allclose(upper, sdp["upper"], rtol=1e-5)
    assert np.all(upper >= sdp["lower"])


def test_regularizer_sampling_weights_and_subsets():
    k, d, m = 5, 4, 3
    reg = DualCertificateRegularizer(k, d, m, weight=0.5)
    gen = torch.Generator().manual_seed(3)
    pairs = reg.sample_pairs_sharing_class(gen)
    assert len(pairs) == k - 1
    i = pairs[0][0]
    assert all(p[0] == i for p in pairs) and sorted(p[1] for p in pairs) == [j for j in range(k) if j != i]
    W, V = _net(m, d, k=k, seed=1, dtype=torch.float32)
    with torch.no_grad():
        reg.c.normal_(generator=torch.Generator().manual_seed(2))
    vals, rows = reg.per_pair(W, V, pairs)
    weights = np.arange(1, reg.num_pairs + 1, dtype=np.float64)
    reg.set_pair_weights(weights)
    total = reg(W, V, pairs)
    assert total.dtype == torch.float32
    assert total.item() == pytest.approx(0.5 * float((weights[rows] * vals.detach().numpy()).sum()), rel=1e-5)
    # (j, i) uses the row of (i, j): same value
    assert reg(W, V, [(1, 0)]).item() == pytest.approx(reg(W, V, [(0, 1)]).item(), rel=1e-6)
    reg.set_pair_weights({(0, 1): 0.0})
    assert reg(W, V, [(0, 1)]).item() == 0.0
    with pytest.raises(SdpcertError, match="not one of"):
        DualCertificateRegularizer(k, d, m, pairs=[(0, 1)])(W, V, [(0, 2)])


def test_bad_input():
    m, d = 3, 4
    W, V = _net(m, d)
    c = torch.zeros(1, 1 + m + d, dtype=torch.float64)
    Wn = W.clone()
    Wn[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="W"):
        pair_dual_penalty(Wn, V, c, [(0, 1)])
    cn = c.clone()
    cn[0, 2] = float("inf")
    with pytest.raises(NonFiniteError, match="c"):
        pair_dual_penalty(W, V, cn, [(0, 1)])
    with pytest.raises(ShapeError, match="c must have shape"):
        pair_dual_penalty(W, V, torch.zeros(1, 5, dtype=torch.float64), [(0, 1)])
    with pytest.raises(ShapeError, match="V must have shape"):
        pair_dual_penalty(W, V[:, :2], c, [(0, 1)])
    with pytest.raises(ShapeError, match="pairs must have shape"):
        pair_dual_penalty(W, V, c, [0, 1])
    with pytest.raises(SdpcertError, match="outside"):
        pair_dual_penalty(W, V, c, [(0, 3)])
    with pytest.raises(SdpcertError, match="two different classes"):
        pair_dual_penalty(W, V, c, [(1, 1)])
    with pytest.raises(SdpcertError, match="integers"):
        pair_dual_penalty(W, V, c, np.array([[0.0, 1.0]]))
    with pytest.raises(SdpcertError, match="one dtype"):
        pair_dual_penalty(W.float(), V, c, [(0, 1)])
    with pytest.raises(SdpcertError, match="backend"):
        pair_dual_penalty(W, V, c, [(0, 1)], backend="gpu")
    reg = DualCertificateRegularizer(3, d, m)
    with pytest.raises(ShapeError, match="W must have shape"):
        reg(W.t(), V)
    with pytest.raises(NonFiniteError):
        certified_dual_bounds(Wn, V, c, [(0, 1)])
    assert issubclass(ShapeError, ValueError) and issubclass(NonFiniteError, ValueError)


def test_precomputed_eigenpairs_give_the_same_value_and_gradient():
    """pair_dual_penalty(eigenpairs=top_eigenpairs(...)) is the same op as the one-call form."""
    W, V = _net(40, 70, k=4, seed=5)
    c = torch.rand(3, 111, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.1
    pairs = [(0, 1), (3, 2), (1, 3)]
    grads = []
    for precompute in (False, True):
        Wg, Vg, cg = (t.clone().requires_grad_(True) for t in (W, V, c))
        eig = top_eigenpairs(Wg, Vg, cg, pairs, tol=1e-12) if precompute else None
        value = pair_dual_penalty(Wg, Vg, cg, pairs, tol=1e-12, eigenpairs=eig)
        value.sum().backward()
        grads.append([value.detach(), Wg.grad, Vg.grad, cg.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    eig = top_eigenpairs(W, V, c, pairs)
    with pytest.raises(SdpcertError, match="other pairs"):
        pair_dual_penalty(W, V, c, [(0, 1), (3, 2), (2, 3)], eigenpairs=eig)
    with pytest.raises(SdpcertError, match="must come from top_eigenpairs"):
        pair_dual_penalty(W, V, c, pairs, eigenpairs=(eig.values, eig.vectors))


def test_async_solve_matches_the_synchronous_forward():
    """The training step's order (solve on the worker thread, then forward) changes nothing: same values, same
    gradients, same warm starts as the plain forward."""
    W, V = _net(30, 50, k=5, seed=8, dtype=torch.float32)
    regs = [DualCertificateRegularizer(k=5, d=50, m=30, weight=0.1, init_c=0.01) for _ in range(2)]
    pairs = [(2, j) for j in range(5) if j != 2]
    out = []
    for use_async, reg in zip((False, True), regs):
        Wg, Vg = W.clone().requires_grad_(True), V.clone().requires_grad_(True)
        values = []
        for _ in range(3):  # three steps: the second and third start from the stored eigenvectors
            eig = reg.solve_async(Wg, Vg, pairs) if use_async else None
            loss = reg(Wg, Vg, pairs, eigenpairs=eig)
            loss.backward()
            values.append(loss.detach())
        out.append((torch.stack(values), Wg.grad, Vg.grad, reg.c.grad,
                     np.stack([reg.warm_start._vectors[tuple(sorted(p))] for p in pairs])))
    for a, b in zip(out[0], out[1]):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_finite_check_does_not_trip_on_an_overflowing_sum():
    """The fast finiteness test sums the tensor; a sum that overflows with every entry finite is not an error,
    while one inf entry still is."""
    W, V = _net(6, 8, k=3, dtype=torch.float32)
    c = torch.zeros(1, 15)
    c[0, :4] = 3e38  # finite entries whose float32 sum overflows
    assert pair_dual_penalty(W, V, c, [(0, 1)]).shape == (1,)
    c[0, 5] = float("inf")
    with pytest.raises(NonFiniteError, match="c holds 1 NaN/inf entry"):
        pair_dual_penalty(W, V, c, [(0, 1)])


def test_lanczos_residual_estimates_without_the_exact_recomputation():
    """exact_residuals=False reports the Lanczos residual estimate; for a converged pair it bounds the same small
    quantity that the exact recomputation measures."""
    W, V = _net(40, 70, k=3, seed=3)
    W64, V64 = W.numpy(), V.numpy()
    pairs = np.array([[0, 1], [1, 2]])
    cs = np.zeros((2, 111))
    exact = _core.top_eigenpairs(W64, V64, pairs, cs, tol=1e-10)
    fast = _core.top_eigenpairs(np.asfortranarray(W64), V64, pairs, cs, tol=1e-10, exact_residuals=False)
    np.testing.assert_allclose(fast["values"], exact["values"], rtol=1e-12)
    assert list(fast["status"]) == ["converged", "converged"]
    scale = np.abs(exact["values"]).max()
    assert (np.asarray(fast["residuals"]) <= 1e-10 * scale * 1.0001).all()
    assert (np.asarray(exact["residuals"]) <= 1e-8 * scale).all()


def test_float32_matvecs_estimate_the_same_eigenpairs():
    """float32 products with W (the training path) give the float64 Ritz values to float32 accuracy; a proof never
    uses them (certified_dual_bounds has no such switch)."""
    W, V = _net(60, 90, k=3, seed=11)
    W64, V64 = np.asfortranarray(W.numpy()), V.numpy()
    pairs = np.array([[0, 1], [2, 1]])
    cs = np.full((2, 151), 0.01)
    ref = _core.top_eigenpairs(W64, V64, pairs, cs, tol=1e-10)
    f32 = _core.top_eigenpairs(W64, V64, pairs, cs, tol=1e-5, float32_matvecs=True, max_iter=400)
    scale = np.abs(ref["values"]).max()
    np.testing.assert_allclose(f32["values"], ref["values"], rtol=0, atol=1e-5 * scale)
    overlap = np.abs(np.sum(np.asarray(f32["vectors"]) * np.asarray(ref["vectors"]), axis=1))
    assert (overlap > 0.999).all(), overlap


def test_public_module_name():
    """``sdpcert.torch`` is the public name of the torch side; it does not shadow the real torch package."""
    import importlib

    sct = importlib.import_module("sdpcert.torch")
    for name in sct.__all__:
        assert getattr(sct, name) is getattr(importlib.import_module("sdpcert.torch"), name)
    assert importlib.import_module("torch").__file__ != sct.__file__


@pytest.mark.parametrize("m,d", [(20, 60), (40, 70)])  # D = 81 (dense solver) and D = 111 (Lanczos)
def test_fused_training_step_matches_the_autograd_op(m, d):
    """The training step's one-call C++ path (value and gradients of the weighted penalty) gives the autograd op's
    value and gradients for the same eigenvectors."""
    W, V = _net(m, d, k=4, seed=m, dtype=torch.float32)
    reg = DualCertificateRegularizer(k=4, d=d, m=m, weight=0.07, init_c=0.0, max_iter=30)
    with torch.no_grad():
        reg.c.uniform_(-0.01, 0.02, generator=torch.Generator().manual_seed(4))
    reg.set_pair_weights(np.linspace(0.5, 1.5, reg.num_pairs))
    pairs = [(1, 0), (1, 2), (1, 3)]
    assert reg._fused_step_applies(W)
    value, dW, dV, dc, rows = reg.value_and_grads(W, V, pairs)
    info = reg.last_info
    assert dW.dtype == torch.float32 and dW.shape == (m, d) and dV.shape == (4, m) and dc.shape == (3, 1 + m + d)
    # the reference: the autograd op on the same eigenpairs
    u = torch.from_numpy(np.stack([reg.warm_start._vectors[tuple(p)] for p in reg.pairs[rows]]))
    eig = Eigenpairs(torch.from_numpy(info["values"]), u, {"pairs": reg.pairs[rows]})
    Wg, Vg = W.double().requires_grad_(True), V.double().requires_grad_(True)
    cg = reg.c.detach()[torch.as_tensor(rows)].double().requires_grad_(True)
    w = reg.pair_weights[torch.as_tensor(rows)].double()
    ref = (reg.weight * w * pair_dual_penalty(Wg, Vg, cg, reg.pairs[rows], eigenpairs=eig)).sum()
    ref.backward()
    torch.testing.assert_close(value.double(), ref.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dW.double(), Wg.grad, rtol=1e-4, atol=1e-5 * float(Wg.grad.abs().max()))
    torch.testing.assert_close(dV.double(), Vg.grad, rtol=1e-4, atol=1e-5 * float(Vg.grad.abs().max()))
    torch.testing.assert_close(dc.double(), cg.grad, rtol=1e-6, atol=1e-9)
    # and the eigen-solve agrees with the generic (float64-product) path to float32 accuracy
    generic = DualCertificateRegularizer(k=4, d=d, m=m, weight=0.07, max_iter=30)
    generic.c.data.copy_(reg.c.data)
    generic.float32_matvecs = False
    ev = generic._solve(W, V, rows).info["values"]
    np.testing.assert_allclose(info["values"], ev, rtol=0, atol=1e-4 * np.abs(ev).max())
