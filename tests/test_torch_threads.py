"""The training penalty and torch's threads (sdpcert.torch.threads), and the regularizer's proven certified error."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

import sdpcert.torch.regularizer as regularizer_module
from sdpcert import TwoLayerNet
from sdpcert.certify import certify_with_growth, sdp_growth
from sdpcert.errors import SdpcertError, ShapeError
from sdpcert.torch import DualCertificateRegularizer, ThreadOversubscriptionWarning
from sdpcert.training import torch_threads
from sdpcert.torch.threads import ContentionMonitor, CoreReservation, ReleasingFuture, single_torch_thread


@pytest.fixture
def two_torch_threads():
    with torch_threads(2):
        yield


def _model(d=12, m=8, k=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, k))


def test_the_op_runs_on_one_thread_and_leaves_the_callers_count(two_torch_threads, monkeypatch):
    seen = []
    original = regularizer_module.top_eigenpairs

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), kwargs["threads"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(regularizer_module, "top_eigenpairs", spy)
    model = _model()
    reg = DualCertificateRegularizer(k=4, d=12, m=8, weight=0.1, init_c=0.01)
    loss = reg(model[0].weight, model[2].weight, reg.sample_pairs_sharing_class())
    loss.backward()
    assert seen == [(1, 1)]  # torch's own work and the core's solve on one thread each
    assert torch.get_num_threads() == 2  # the caller's setting is back
    assert reg.c.grad is not None and model[0].weight.grad is not None


def test_forward_is_the_weighted_sum_of_per_pair_values_with_the_same_gradients():
    model = _model(seed=3).double()
    W, V = model[0].weight, model[2].weight
    pairs = [(1, 0), (1, 2), (1, 3)]
    regs = [DualCertificateRegularizer(k=4, d=12, m=8, weight=0.3, init_c=0.02).double() for _ in range(2)]
    for reg in regs:
        reg.set_pair_weights(np.arange(1.0, 7.0))
    out = []
    for fused, reg in zip((True, False), regs):
        Wg, Vg = W.detach().clone().requires_grad_(True), V.detach().clone().requires_grad_(True)
        if fused:
            loss = reg(Wg, Vg, pairs)
        else:
            values, rows = reg.per_pair(Wg, Vg, pairs)
            loss = reg.weight * (reg.pair_weights[torch.as_tensor(rows)].to(values.dtype) * values).sum()
        loss.backward()
        out.append((loss.detach(), Wg.grad, Vg.grad, reg.c.grad))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_core_reservation_holds_torch_to_one_fewer_thread_while_in_flight(two_torch_threads):
    res = CoreReservation(cores=lambda: 2)
    res.acquire()
    res.acquire()
    assert torch.get_num_threads() == 1 and res.held
    res.release()
    assert torch.get_num_threads() == 1  # one solve still in flight
    res.release()
    assert torch.get_num_threads() == 2 and not res.held
    # another thread's release counts the solve as done but cannot restore this thread's setting
    res.acquire()
    t = threading.Thread(target=res.release)
    t.start()
    t.join()
    assert torch.get_num_threads() == 1 and res.held
    res.acquire()
    res.release()
    assert torch.get_num_threads() == 2
    # nothing to do when torch already leaves a core free, or on one core
    torch.set_num_threads(1)
    res.acquire()
    assert torch.get_num_threads() == 1 and not res.held
    res.release()
    torch.set_num_threads(2)
    single = CoreReservation(cores=lambda: 1)
    single.acquire()
    assert torch.get_num_threads() == 2
    single.release()


def test_async_solve_reserves_a_core_until_the_forward_takes_it(two_torch_threads, monkeypatch):
    monkeypatch.setattr(regularizer_module, "_RESERVATION", CoreReservation(cores=lambda: 2))
    model = _model(seed=1)
    reg = DualCertificateRegularizer(k=4, d=12, m=8, weight=0.1)
    W, V = model[0].weight, model[2].weight
    pending = reg.solve_async(W, V, [(0, 1), (0, 2)])
    assert isinstance(pending, ReleasingFuture)
    assert torch.get_num_threads() == 1  # held while in flight
    loss = reg(W, V, [(0, 1), (0, 2)], eigenpairs=pending)
    assert torch.get_num_threads() == 2
    loss.backward()
    grads = reg.value_and_grads_async(W, V, [(0, 1)])
    assert torch.get_num_threads() == 1
    value, dW, dV, dc, rows = grads.result()
    assert torch.get_num_threads() == 2 and rows.tolist() == [0]


def test_releasing_future_relays_exceptions_once():
    import concurrent.futures

    calls = []
    inner = concurrent.futures.Future()
    outer = ReleasingFuture(inner, lambda: calls.append(1))
    inner.set_exception(SdpcertError("boom"))
    for _ in range(2):
        with pytest.raises(SdpcertError, match="boom"):
            outer.result()
    assert calls == [1]


def test_monitor_warns_once_with_what_to_set(monkeypatch):
    monkeypatch.setattr(ContentionMonitor, "_warned", False)
    mon = ContentionMonitor(window=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):  # torch on one thread: nothing to say, whatever the share
            mon.record(0.02, 0.002, torch_threads=1)
        for _ in range(10):  # a full core: nothing to say
            mon.record(0.01, 0.0099, torch_threads=2)
        mon.record(0.03, 0.01, torch_threads=2)  # window: three full cores and a third: median 99%
        mon.record(0.001, 0.0001, torch_threads=2)  # too short to judge
    with pytest.warns(ThreadOversubscriptionWarning, match=r"torch.set_num_threads\(1\)") as record:
        mon.record(0.03, 0.01, torch_threads=2)  # median 66%: nothing yet
        mon.record(0.03, 0.01, torch_threads=2)  # median 33%: warns
    assert len(record) == 1 and "OMP_WAIT_POLICY=PASSIVE" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = ContentionMonitor(window=1)
        for _ in range(3):
            other.record(0.03, 0.001, torch_threads=4)  # once per process


def test_single_torch_thread_restores_on_error(two_torch_threads):
    with pytest.raises(RuntimeError):
        with single_torch_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("x")
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("one_torch_thread")
def test_certified_error_is_the_proven_dual_certificate_on_data():
    from sdpcert import _core

    d, m, k = 10, 7, 3
    model = _model(d, m, k, seed=4).double()
    reg = DualCertificateRegularizer(k=k, d=d, m=m, weight=0.5).double()
    opt = torch.optim.Adam([*model.parameters(), *reg.parameters()], lr=0.02)
    X = np.random.default_rng(0).normal(scale=3.0, size=(200, d))
    for _ in range(20):
        opt.zero_grad()
        reg(model[0].weight, model[2].weight).backward()
        opt.step()
    net = TwoLayerNet.from_torch(model)
    y = np.asarray(net.predict(X))  # labels the net gets right: margins to certify
    S = np.zeros((k, k))
    for (i, j), s in zip(reg.pairs, reg.certified_upper(net.W, net.V)):
        S[i, j] = S[j, i] = s
    errors = []
    grid = [0.0, *np.geomspace(1e-4, 100.0, 61)]
    for eps in grid:
        result = reg.certify(model, X, y, eps)  # the torch model or the TwoLayerNet
        assert result.method == "dual" and reg.certified_error(net, X, y, eps) == result.certified_error
        # the documented manual path gives the same numbers: proven S, sdp_growth, certify_with_growth
        manual = certify_with_growth(net, X, y, eps, sdp_growth(net, S), method="dual")
        np.testing.assert_array_equal(result.worst_margin, manual.worst_margin)
        errors.append(result.certified_error)
    assert errors == sorted(errors) and errors[0] == 0.0 and errors[-1] == 1.0  # y = the net's own predictions
    inside = [eps for eps, e in zip(grid, errors) if 0.0 < e < 1.0]
    assert inside
    eps = inside[0]
    result = reg.certify(net, X, y, eps)
    # never better than the SDP itself: every dual bound is >= the pair SDP's proven lower bound, so an example the
    # dual certifies is certified by the solver's exact growth too
    sdp = _core.solve_pair_sdps(net.W, net.V, reg.pairs)
    S_low = np.zeros((k, k))
    for (i, j), s in zip(reg.pairs, sdp["lower"]):
        S_low[i, j] = S_low[j, i] = s
    lower = certify_with_growth(net, X, y, eps, sdp_growth(net, S_low))
    assert np.all(lower.worst_margin <= result.worst_margin)


@pytest.mark.usefixtures("one_torch_thread")
def test_certified_error_with_pairs_the_regularizer_does_not_own():
    d, m, k = 6, 5, 3
    model = _model(d, m, k, seed=2).double()
    reg = DualCertificateRegularizer(k=k, d=d, m=m, pairs=[(0, 1)], init_c=1.0).double()
    X = np.random.default_rng(1).uniform(0, 1, size=(60, d))
    y = np.asarray(TwoLayerNet.from_torch(model).predict(X))
    G, S = reg.certified_growth(model)
    assert np.isfinite(S[0, 1]) and np.isinf(S[0, 2]) and np.isinf(S[1, 2])
    result = reg.certify(model, X, y, 0.0)
    # label 2 meets unbounded pairs (0, 2) and (1, 2); labels 0 and 1 meet one unbounded pair each as well
    assert not result.certified.any() and np.all(np.isinf(result.worst_margin))
    reg2 = DualCertificateRegularizer(k=k, d=d, m=m, pairs=[(0, 1), (0, 2)], init_c=1.0).double()
    res2 = reg2.certify(model, X, y, 0.0)
    lab1_or_2 = (y == 1) | (y == 2)
    assert np.all(np.isinf(res2.worst_margin[lab1_or_2])) and np.all(res2.worst_class[y == 1] == 2)
    assert np.all(np.isfinite(res2.worst_margin[y == 0]))
    assert np.all(res2.certified[y == 0])  # eps = 0: a correctly classified example is certified


def test_certified_error_bad_input():
    reg = DualCertificateRegularizer(k=3, d=6, m=5)
    with pytest.raises(ShapeError, match="6-5-3"):
        reg.certified_error(_model(7, 5, 3), np.zeros((2, 7)), [0, 1], 0.1)
    with pytest.raises(SdpcertError, match="TwoLayerNet or a torch"):
        reg.certified_error("model.npz", np.zeros((2, 6)), [0, 1], 0.1)
    with pytest.raises(SdpcertError):
        reg.certified_error(_model(6, 5, 3), np.zeros((2, 6)), [0, 1], -0.1)
