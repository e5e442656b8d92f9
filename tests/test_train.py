"""sdpcert.training: every objective trains; the SDP penalty goes down; the logged dual certificate is sound (never
better than the exact SDP, never below the clean error); resuming reproduces an uninterrupted run; the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.cli import main
from sdpcert.attacks import evaluate_attacks
from sdpcert.training import (OBJECTIVES, TrainConfig, Trainer, certified_error_from_growth,
                              crammer_singer_hinge, dual_growth as _dual_growth, multiclass_hinge, train)

TINY = dict(hidden=20, limit=200, test_limit=150, batch_size=50, at_steps=3, weight_refresh_every=1)


def _weights(net: TwoLayerNet) -> list[np.ndarray]:
    return [np.asarray(a) for a in (net.W, net.b, net.V, net.b2)]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_each_objective_trains_and_saves(tmp_path, objective):
    cfg = TrainConfig(objective=objective, epochs=2, out_dir=str(tmp_path), **TINY)
    result = train(cfg, progress=False)
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    for row in history:
        assert np.isfinite(row["train_loss"])
        assert 0.0 <= row["clean_error"] <= 1.0
        if cfg.is_sdp:
            assert row["clean_error"] <= row["dual_certified_error"] <= 1.0
            assert np.isfinite(row["dual_S_mean"])
        if objective == "lp":
            assert row["clean_error"] <= row["lp_certified_error"] <= 1.0
            assert 0 < row["lp_eps"] <= cfg.eps_train
    loaded = TwoLayerNet.load(tmp_path / "model.npz")
    assert loaded.fingerprint() == result["net"].fingerprint()
    X, _ = load_mnist_sample("test", limit=20)
    model = result["trainer"].model.to(torch.float64)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(X.astype(np.float64))).numpy()
    np.testing.assert_allclose(loaded.forward(X), torch_logits, rtol=1e-12, atol=1e-12)
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["objective"] == objective and len(log["epochs"]) == 2
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and "clean_error" in rows[0]
    if objective == "sdp-weighted":  # unweighted first epoch, then weights refreshed every epoch (TINY)
        assert "pair_weights" not in history[0]
        w = np.array(history[1]["pair_weights"])
        assert w.shape == (45,) and np.all(w >= 0) and abs(w.sum() - 45.0) < 1e-9  # mean 1 over the pairs
        np.testing.assert_allclose(result["trainer"].reg.pair_weights.numpy(), w, rtol=1e-6)
    assert_no_certified_point_is_broken(loaded)


def assert_no_certified_point_is_broken(net: TwoLayerNet, n: int = 200) -> None:
    """Soundness on a trained model: at radii where the certificates are not vacuous, no point certified by the
    SDP or LP bound is broken by FGSM, PGD or CW."""
    X, y = load_mnist_sample("test", limit=n)
    certifier = Certifier(net)
    certified_somewhere = 0
    for eps in (0.01, 0.05, 0.1):
        attacks = evaluate_attacks(net, X, y, eps, options={"pgd": {"steps": 20}, "cw": {"steps": 20}})
        for method in ("sdp", "lp"):
            result = certifier.certify(X, y, eps, method)
            broken = np.flatnonzero(result.certified & attacks["any_fooled"])
            assert broken.size == 0, f"eps {eps}, {method}: certified points {broken[:10]} broken by an attack"
            certified_somewhere += int(result.certified.sum())
    assert certified_somewhere > 0  # the check compared real certificates, not only empty sets


def test_hinge_matches_definition():
    logits = torch.tensor([[2.0, 1.5, -1.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1])
    # row 0: max(0, 1 + 1.5 - 2) + max(0, 1 - 1 - 2) = 0.5; row 1: max(0, 1 + 0) + max(0, 1 + 3) = 5
    assert float(multiclass_hinge(logits, labels)) == pytest.approx(2.75)


def test_crammer_singer_hinge_matches_definition_and_trains():
    logits = torch.tensor([[2.0, 1.5, -1.0], [0.0, 0.0, 3.0], [5.0, 0.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    # max(0, 1 + max_{j != y} f_j - f_y): row 0 1 + 1.5 - 2 = 0.5; row 1 1 + 3 - 0 = 4; row 2 max(0, 1 + 1 - 5) = 0
    assert float(crammer_singer_hinge(logits, labels)) == pytest.approx(1.5)
    cfg = TrainConfig(objective="sdp", hidden=20, sdp_hinge="cs", sdp_loss_scale=30.0)
    trainer = Trainer(cfg)
    X, y = load_mnist_sample("train", limit=50)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    before = float(crammer_singer_hinge(trainer.model(xb), yb).detach())
    parts = trainer.step(xb, yb)
    assert parts["hinge"] == pytest.approx(before, rel=1e-6)  # the step reports (and trains) the chosen hinge
    assert parts["loss"] == pytest.approx(30.0 * parts["hinge"] + parts["penalty"], rel=1e-6)


def test_sdp_penalty_decreases():
    """Penalty only (loss scale 0): the proven dual bounds on all pairs go down over a few Adam steps."""
    cfg = TrainConfig(objective="sdp", hidden=20, sdp_loss_scale=0.0, lr=1e-2)
    trainer = Trainer(cfg)
    X, y = load_mnist_sample("train", limit=50)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    W, V = (t.detach().numpy() for t in (trainer.W, trainer.V))
    before = trainer.reg.certified_upper(W.astype(np.float64), V.astype(np.float64)).sum()
    penalties = [trainer.step(xb, yb)["penalty"] for _ in range(30)]
    W, V = (t.detach().numpy() for t in (trainer.W, trainer.V))
    after = trainer.reg.certified_upper(W.astype(np.float64), V.astype(np.float64)).sum()
    assert np.isfinite(before) and after < 0.8 * before
    assert np.mean(penalties[-5:]) < np.mean(penalties[:5])


def test_growth_certificate_matches_certifier():
    """certified_error_from_growth with the Certifier's own growth reproduces Certifier.certify exactly."""
    cfg = TrainConfig(objective="nt", epochs=1, **TINY)
    net = train(cfg, progress=False)["net"]
    X, y = load_mnist_sample("test", limit=150)
    certifier = Certifier(net)
    for eps in (0.0, 0.005, 0.02):
        ref = certifier.certify(X, y, eps)
        got = certified_error_from_growth(net, X, y, eps, certifier.growth("sdp"))
        np.testing.assert_array_equal(got["worst_margin"], ref.worst_margin)
        np.testing.assert_array_equal(got["worst_class"], ref.worst_class)
        assert got["certified_error"] == ref.certified_error and got["clean_error"] == ref.clean_error


def test_dual_certificate_no_better_than_exact_sdp():
    """The logged dual certificate (proven bounds from the trained, feasible but not optimal c) is never better than
    the exact SDP certificate, and never below the clean error."""
    eps_train = 0.005
    cfg = TrainConfig(objective="sdp", epochs=3, eps_train=eps_train, hidden=20, limit=600, test_limit=200,
                      batch_size=50, lr=3e-3)
    result = train(cfg, progress=False)
    net, last, reg = result["net"], result["history"][-1], result["trainer"].reg
    X, y = load_mnist_sample("test", limit=200)
    certifier = Certifier(net)
    exact = certifier.certify(X, y, eps_train)
    assert last["clean_error"] == exact.clean_error
    assert exact.clean_error <= exact.certified_error <= last["dual_certified_error"] < 1.0  # not a trivial 100%
    G_dual, S_dual = _dual_growth(reg, net)
    for eps in (0.0, 0.001, 0.002, 0.01, 0.05):
        dual = certified_error_from_growth(net, X, y, eps, G_dual)
        ref = certifier.certify(X, y, eps)
        assert dual["certified_error"] >= ref.certified_error >= ref.clean_error
        assert not np.any(dual["certified"] & ~ref.certified)  # dual-certified points are exactly-certified too
    # per pair: the dual bound from the trained c is a valid upper bound on the optimum S_ij
    pairs = certifier.pair_bounds()
    assert np.all(S_dual >= pairs.lower) and np.all(np.isfinite(S_dual))


@pytest.mark.parametrize("objective", ["sdp", "at", "spe"])
def test_resume_reproduces_uninterrupted_run(tmp_path, objective):
    base = dict(objective=objective, **TINY)
    full = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "full"), **base), progress=False)
    train(TrainConfig(epochs=1, out_dir=str(tmp_path / "split"), **base), progress=False)
    resumed = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "split"), resume=True, **base), progress=False)
    for a, b in zip(_weights(full["net"]), _weights(resumed["net"])):
        np.testing.assert_array_equal(a, b)
    assert len(resumed["history"]) == 2
    assert resumed["history"][-1]["train_loss"] == full["history"][-1]["train_loss"]
    with pytest.raises(SdpcertError, match="other settings"):
        train(TrainConfig(epochs=3, out_dir=str(tmp_path / "split"), resume=True, **{**base, "hidden": 21}),
              progress=False)


def test_spectral_norm_power_iteration_matches_the_svd():
    """spe's warm-started power iteration: after a few steps its value is within 1e-3 below the SVD's ||W||_2, and
    its gradient is u v^T of the iteration's singular pair."""
    X, y = load_mnist_sample("train", limit=400)
    trainer = Trainer(TrainConfig(objective="spe", hidden=30))
    for lo in range(0, 400, 50):
        trainer.step(torch.from_numpy(X[lo:lo + 50]), torch.from_numpy(y[lo:lo + 50]))
    for name, M in (("W", trainer.W), ("V", trainer.V)):
        for _ in range(30):  # as many rounds as 10 more steps would do, without moving the weights
            trainer.spectral_norm(name, M.detach())
        Mg = M.detach().double().requires_grad_(True)
        trainer.power_vectors[name] = trainer.power_vectors[name].double()
        est = trainer.spectral_norm(name, Mg)
        exact = torch.linalg.matrix_norm(Mg.detach(), ord=2)
        # a Rayleigh quotient: never above ||M||_2, and close to it (a random-like net's top singular values are
        # close together, which slows the power iteration; trained nets separate them)
        assert float(exact) * (1 - 1e-3) <= float(est.detach()) <= float(exact) * (1 + 1e-6)
        est.backward()
        u = trainer.power_vectors[name]
        v = Mg.detach().t() @ u
        v = v / v.norm()
        assert torch.allclose(Mg.grad, torch.outer(u, v), atol=1e-6)  # the gradient u v^T of the estimate


def test_snapshots(tmp_path):
    result = train(TrainConfig(objective="nt", epochs=3, snapshot_every=2, out_dir=str(tmp_path), **TINY),
                   progress=False)
    assert sorted(p.name for p in tmp_path.glob("model_epoch*.npz")) == ["model_epoch002.npz"]
    assert TwoLayerNet.load(tmp_path / "model.npz").fingerprint() == result["net"].fingerprint()
    with pytest.raises(SdpcertError, match="snapshot_every"):
        TrainConfig(snapshot_every=-1)


def test_config_validation(tmp_path):
    with pytest.raises(SdpcertError, match="objective"):
        TrainConfig(objective="milp")
    with pytest.raises(SdpcertError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(SdpcertError, match="sdp_lambda"):
        TrainConfig(sdp_lambda=-1.0)
    with pytest.raises(SdpcertError, match="out_dir"):
        TrainConfig(resume=True)
    with pytest.raises(SdpcertError, match="cannot resume"):
        train(TrainConfig(out_dir=str(tmp_path), resume=True, **TINY), progress=False)


def test_training_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(TrainConfig(objective="nt", epochs=1, **TINY), progress=False)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_train_writes_files(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--objective", "sdp", "--epochs", "1", "--hidden", "20", "--limit", "200", "--test-limit",
            "100", "--batch-size", "50", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "epoch   1" in text and "dual-cert" in text and "done: sdp, 1 epochs" in text
    for name in ("model.npz", "log.json", "log.csv", "checkpoint.pt"):
        assert (out / name).is_file()
    TwoLayerNet.load(out / "model.npz")
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv + ["--resume"]) == 0
    assert len(json.loads((out / "log.json").read_text())["epochs"]) == 2


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "1"],                                   # --objective missing
    ["train", "--objective", "milp", "--epochs", "1"],            # unknown objective
    ["train", "--objective", "nt", "--epochs", "0"],              # epochs must be positive
    ["train", "--objective", "nt", "--epochs", "1", "--lr", "-1"],
    ["train", "--objective", "nt", "--epochs", "1", "--data", "/nonexistent/mnist"],
])
def test_cli_train_bad_args(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip()


def test_cli_train_resume_without_checkpoint(tmp_path, capsys):
    code = main(["train", "--objective", "nt", "--epochs", "1", "--out", str(tmp_path / "none"), "--resume",
                 "--no-progress", "--limit", "100"])
    assert code == 2
    assert "cannot resume" in capsys.readouterr().err


def test_torch_eigen_route_trains_like_on_a_gpu():
    """The route a CUDA device takes (the penalty's eigenpairs from torch's eigh, gradients by the shared formula,
    tensors on config.device), run on the CPU: steps are finite and move the weights and the dual variables."""
    X, y = load_mnist_sample("train", limit=100)
    trainer = Trainer(TrainConfig(objective="sdp", hidden=12, device="cpu", eig_iters=30))
    trainer.reg.backend = "torch"
    W0, c0 = trainer.W.detach().clone(), trainer.reg.c.detach().clone()
    for lo in (0, 50):
        parts = trainer.step(torch.from_numpy(X[lo:lo + 50]), torch.from_numpy(y[lo:lo + 50]))
        assert np.isfinite(parts["loss"]) and parts["penalty"] > 0
        assert trainer.reg.last_info["backend"] == "torch"
    assert not torch.equal(trainer.W.detach(), W0) and not torch.equal(trainer.reg.c.detach(), c0)
    with pytest.raises(SdpcertError, match="device"):
        TrainConfig(device="gpu0")


def test_dual_growth_is_infinite_for_pairs_the_regularizer_does_not_own():
    """A regularizer over some pairs proves nothing about the others: their growth must be +inf (never certified
    against), not 0 (which would claim those margins cannot grow)."""
    import sdpcert.torch as sct

    rng = np.random.default_rng(0)
    net = TwoLayerNet(rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(3, 5)), rng.normal(size=3))
    reg = sct.DualCertificateRegularizer(k=3, d=4, m=5, pairs=[(0, 1)], init_c=1.0)
    G, S = _dual_growth(reg, net)
    assert np.isfinite(S[0, 1]) and np.isfinite(G[0, 1])
    assert np.all(np.isinf(G[[0, 1, 2, 2], [2, 2, 0, 1]]))
    X = rng.normal(size=(20, 4))
    y = net.predict(X)
    out = certified_error_from_growth(net, X, y, 1e-3, G)
    # every label has an unowned adversary (0 and 1 against 2, 2 against both): with +inf growth nothing is
    # certified at any eps > 0, while G = 0 there would have certified every correctly classified point
    assert not np.any(out["certified"])
