"""Certified training over the input box (objective ``crown-box``, sdpcert.torch.box_bound): the training bounds are
>= the exact worst margins over the ball intersected with the box on tiny nets, the chord version is the rigorous
LP certificate's float counterpart, gradients are right (gradcheck in float64), the schedule, the objective trains
and resumes bit for bit (Python and CLI), and bad settings are one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import relu_max_margin_enum_box
from sdpcert import SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.certify.lp import lp_margin_bounds, lp_worst_margins
from sdpcert.cli import main
from sdpcert.torch import lp_margin_bounds_torch
from sdpcert.torch.box_bound import (box_region_torch, certified_cross_entropy, interval_margin_bounds_torch,
                                     linear_margin_bounds_torch)
from sdpcert.training import EXTRA_OBJECTIVES, OBJECTIVES, TRAIN_OBJECTIVES, TrainConfig, Trainer, pgd_torch, train

TINY = dict(objective="crown-box", hidden=20, limit=200, test_limit=100, batch_size=50, cert_warmup_epochs=0,
            cert_ramp_epochs=1, eps_train=0.05)


def _tiny_net(rng, d=3, m=5, k=3) -> TwoLayerNet:
    return TwoLayerNet(rng.standard_normal((m, d)), 0.5 * rng.standard_normal(m), rng.standard_normal((k, m)),
                       0.1 * rng.standard_normal(k))


def _torch_weights(net: TwoLayerNet, dtype=torch.float64):
    return [torch.tensor(np.asarray(a), dtype=dtype) for a in (net.W, net.b, net.V, net.b2)]


def test_extra_objective_leaves_the_papers_seven_alone():
    """sdpcert reproduce trains one network per entry of OBJECTIVES: crown-box is accepted by train, not added there."""
    assert OBJECTIVES == ("nt", "fro", "spe", "at", "sdp", "sdp-weighted", "lp")
    assert "crown-box" in EXTRA_OBJECTIVES and TRAIN_OBJECTIVES == OBJECTIVES + EXTRA_OBJECTIVES


def test_paper_objectives_records_leave_out_the_new_settings():
    """sdpcert reproduce names its networks by a hash of TrainConfig.to_dict(): the paper's objectives at the new
    settings' defaults must give the dict they gave before those settings existed (so existing runs are reused)."""
    from sdpcert.training.config import CERTIFIED_KEYS

    from sdpcert.training.config import QUIET_DEFAULT_KEYS

    for objective in OBJECTIVES:
        assert not set(CERTIFIED_KEYS + QUIET_DEFAULT_KEYS) & set(TrainConfig(objective=objective).to_dict())
    # crown-box records its settings, except those added after its packaged run while they are at their defaults
    # (its reproduce hash stays the packaged net's)
    crown = TrainConfig(objective="crown-box").to_dict()
    assert set(CERTIFIED_KEYS) - set(QUIET_DEFAULT_KEYS) <= set(crown) and not set(QUIET_DEFAULT_KEYS) & set(crown)
    extras = TrainConfig(objective="crown-box", cert_pgd_weight=0.5, cert_pgd_steps=3, cert_sdp_lambda=1e-3).to_dict()
    assert (extras["cert_pgd_weight"], extras["cert_pgd_steps"], extras["cert_sdp_lambda"]) == (0.5, 3, 1e-3)
    assert TrainConfig(objective="sdp", sdp_hinge="cs").to_dict()["sdp_hinge"] == "cs"
    assert TrainConfig(objective="lp", eval_eps=0.05).to_dict()["eval_eps"] == 0.05  # recorded once it is set


def test_box_region():
    X = torch.tensor([[0.0, 0.05, 0.5, 0.97, 1.0]], dtype=torch.float64)
    c, rho = box_region_torch(X, 0.1, (0.0, 1.0))
    np.testing.assert_allclose((c - rho).numpy(), [[0.0, 0.0, 0.4, 0.87, 0.9]], atol=1e-15)
    np.testing.assert_allclose((c + rho).numpy(), [[0.1, 0.15, 0.6, 1.0, 1.0]], atol=1e-15)
    c, rho = box_region_torch(X, 0.1, None)
    assert torch.equal(c, X) and bool((rho == 0.1).all())


@pytest.mark.parametrize("domain", [None, (0.0, 1.0)])
def test_chord_bound_is_the_rigorous_lp_without_its_rounding_allowance(domain):
    """With W-K's lower slopes the torch bound is the float value of the proven LP certificate (certify.lp): the
    proof only adds rounding allowances (>= and within 1e-9); without a box it is exactly the lp objective's bound."""
    rng = np.random.default_rng(0)
    net = _tiny_net(rng, d=12, m=16, k=4)
    X = rng.uniform(0, 1, (40, 12))
    X[:, :5] = 0.0  # pixels at the box's edges: the box and the ball differ there
    X[:, 5:7] = 1.0
    y = rng.integers(0, 4, 40)
    args = (*_torch_weights(net), torch.from_numpy(X), torch.from_numpy(y))
    got = linear_margin_bounds_torch(*args, 0.08, domain, "chord").numpy()
    proven = lp_margin_bounds(net, X, y, 0.08, input_domain=domain)
    off = np.ones_like(got, dtype=bool)
    off[np.arange(40), y] = False
    assert np.all(proven[off] >= got[off])
    np.testing.assert_allclose(proven[off], got[off], rtol=1e-9, atol=1e-9)
    if domain is None:
        np.testing.assert_allclose(lp_margin_bounds_torch(*args, 0.08).numpy(), got, rtol=1e-12, atol=1e-12)


def test_bounds_are_above_the_exact_worst_margins_over_the_box():
    """Every training bound (adaptive and chord lower slopes, interval, and their mix) is >= the exact max of
    f_j - f_y over the ball intersected with [0, 1] (activation-pattern enumeration), and the box makes the linear
    bound no larger than over the whole ball."""
    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(6):
        net = _tiny_net(rng)
        X = rng.uniform(0, 1, (3, 3))
        X[0, 0], X[1, 2] = 0.0, 1.0
        y = rng.integers(0, 3, 3)
        eps = (0.05, 0.2, 0.5)[trial % 3]
        args = (*_torch_weights(net), torch.from_numpy(X), torch.from_numpy(y), eps)
        bounds = {name: fn().numpy() for name, fn in {
            "adaptive": lambda: linear_margin_bounds_torch(*args, (0, 1), "adaptive"),
            "chord": lambda: linear_margin_bounds_torch(*args, (0, 1), "chord"),
            "interval": lambda: interval_margin_bounds_torch(*args, (0, 1))}.items()}
        ball = linear_margin_bounds_torch(*args, None, "adaptive").numpy()
        for n in range(3):
            for j in range(3):
                if j == y[n]:
                    continue
                exact, _ = relu_max_margin_enum_box(net, X[n], eps, j, int(y[n]), 0.0, 1.0)
                for name, value in bounds.items():
                    assert value[n, j] >= exact - 1e-9, (name, trial, n, j)
                mix = 0.3 * bounds["interval"][n, j] + 0.7 * bounds["adaptive"][n, j]
                assert mix >= exact - 1e-9
                checked += 1
        box_on = bounds["adaptive"]
        assert np.all(box_on <= ball + 1e-12)
    assert checked == 36


def test_mixed_cross_entropy_is_the_cross_entropy_of_the_mixed_bounds():
    rng = np.random.default_rng(2)
    net = _tiny_net(rng, d=6, m=8, k=4)
    X, y = torch.from_numpy(rng.uniform(0, 1, (10, 6))), torch.from_numpy(rng.integers(0, 4, 10))
    args = (*_torch_weights(net), X, y, 0.1)
    mixed = 0.25 * interval_margin_bounds_torch(*args) + 0.75 * linear_margin_bounds_torch(*args)
    want = torch.nn.functional.cross_entropy(mixed, y)
    assert float(certified_cross_entropy(*args, interval_weight=0.25)) == pytest.approx(float(want), rel=1e-12)
    # at radius 0 every bound is the exact margin: the robust cross-entropy is the natural one
    logits = torch.from_numpy(net.forward(X.numpy()))
    natural = torch.nn.functional.cross_entropy(logits, y)
    args0 = (*_torch_weights(net), X, y, 0.0)
    for w in (0.0, 0.5, 1.0):
        assert float(certified_cross_entropy(*args0, interval_weight=w)) == pytest.approx(float(natural), rel=1e-12)


@pytest.mark.parametrize("which", ["adaptive", "chord", "interval", "loss"])
def test_gradients_match_finite_differences(which):
    """torch.autograd.gradcheck in float64 on a tiny net, through the bounds, the slopes and the box: W, b, V, b2 and
    the inputs (inputs inside the box, off its edges, so the clamps do not switch under the perturbation)."""
    rng = np.random.default_rng(3)
    net = _tiny_net(rng, d=4, m=6, k=3)
    X = torch.from_numpy(rng.uniform(0.2, 0.8, (5, 4)))
    y = torch.from_numpy(rng.integers(0, 3, 5))
    params = [t.requires_grad_(True) for t in _torch_weights(net)] + [X.clone().requires_grad_(True)]
    eps = 0.15

    def fn(W, b, V, b2, Xv):
        if which == "interval":
            return interval_margin_bounds_torch(W, b, V, b2, Xv, y, eps)
        if which == "loss":
            return certified_cross_entropy(W, b, V, b2, Xv, y, eps, interval_weight=0.3)
        return linear_margin_bounds_torch(W, b, V, b2, Xv, y, eps, (0, 1), which)

    with torch.no_grad():  # the check is only meaningful if some units are unstable
        c, rho = box_region_torch(X, eps, (0, 1))
        z = c @ params[0].t() + params[1]
        r = rho @ params[0].abs().t()
        assert bool(((z - r < 0) & (z + r > 0)).any())
    assert torch.autograd.gradcheck(fn, tuple(params), eps=1e-6, atol=1e-6)


def test_schedule_warmup_ramp_and_constant():
    trainer = Trainer(TrainConfig(objective="crown-box", hidden=4, eps_train=0.12, cert_warmup_epochs=2,
                                  cert_ramp_epochs=4, cert_kappa_start=1.0, cert_kappa_end=0.2), d=6, k=3)
    for t, (eps, kappa) in {0.0: (0.0, 1.0), 1.9: (0.0, 1.0), 2.0: (0.0, 1.0), 3.0: (0.03, 0.8), 4.0: (0.06, 0.6),
                            6.0: (0.12, 0.2), 50.0: (0.12, 0.2)}.items():
        got = trainer.certified_schedule(t)
        assert got == pytest.approx((eps, kappa)), t
    step = Trainer(TrainConfig(objective="crown-box", hidden=4, cert_warmup_epochs=1, cert_ramp_epochs=0), d=6, k=3)
    assert step.certified_schedule(0.99) == (0.0, 1.0) and step.certified_schedule(1.0) == (0.1, 0.0)


def test_trains_logs_the_proven_box_certificate_and_resumes_bit_for_bit(tmp_path):
    base = dict(TINY, eval_eps=0.04)
    full = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "full"), **base), progress=False)
    rows = full["history"]
    assert [r["epoch"] for r in rows] == [1, 2]
    X, y = load_mnist_sample("test", limit=100)
    proven = lp_worst_margins(full["net"], X, y, 0.04, input_domain=(0, 1))
    assert rows[-1]["lp_box_certified_error"] == float((proven >= 0).mean())
    assert rows[-1]["eval_eps"] == 0.04 and rows[-1]["train_radius"] == pytest.approx(0.05)
    assert rows[0]["clean_error"] <= rows[0]["lp_box_certified_error"] <= 1.0
    for r in rows:
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["train_robust_ce"]) and 0.0 <= r["kappa"] <= 1.0
    train(TrainConfig(epochs=1, out_dir=str(tmp_path / "split"), **base), progress=False)
    resumed = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "split"), resume=True, **base), progress=False)
    for a, b in zip((full["net"].W, full["net"].V, full["net"].b2), (resumed["net"].W, resumed["net"].V,
                                                                      resumed["net"].b2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed["history"][-1]["train_loss"] == rows[-1]["train_loss"]
    with pytest.raises(SdpcertError, match="other settings.*cert_kappa_end"):
        train(TrainConfig(epochs=3, out_dir=str(tmp_path / "split"), resume=True, **{**base, "cert_kappa_end": 0.5}),
              progress=False)


def test_pgd_mix_and_sdp_penalty_enter_the_loss_as_documented():
    """crown-box's extras: loss = kappa CE + (1 - kappa)((1 - beta) CE(bounds) + beta CE(PGD)) + lambda (radius /
    eps_train) penalty, the PGD examples inside the ball and the box, the penalty the sdp objective's on k - 1 pairs
    (the same value the regularizer gives for the pairs drawn from the same generator state)."""
    from sdpcert.training.objectives import batch_losses

    cfg = TrainConfig(**{**TINY, "cert_ramp_epochs": 2, "cert_pgd_weight": 0.25, "cert_pgd_steps": 3,
                         "cert_sdp_lambda": 2e-3})
    trainer = Trainer(cfg)
    assert trainer.reg is not None and trainer.reg.weight == 1.0
    trainer.progress = 1.0  # half-way up the ramp: radius 0.025, kappa 0.5
    eps, kappa = trainer.certified_schedule()
    assert (eps, kappa) == pytest.approx((0.025, 0.5))
    X, y = load_mnist_sample("train", limit=40)
    xb, yb = torch.from_numpy(X), torch.from_numpy(y)
    state = trainer.generator.get_state()
    parts = {key: value.detach() for key, value in batch_losses(trainer, xb, yb).items()}
    trainer.generator.set_state(state)
    xa = pgd_torch(trainer.model, xb, yb, eps, 2.5 * eps / 3, 3, trainer.generator, (0.0, 1.0))
    pairs = trainer.reg.sample_pairs_sharing_class(trainer.generator)
    assert len(pairs) == 9
    with torch.no_grad():
        pgd_ce, penalty = F.cross_entropy(trainer.model(xa), yb), trainer.reg(trainer.W, trainer.V, pairs)
    assert float(parts["pgd_ce"]) == pytest.approx(float(pgd_ce), rel=1e-6)
    assert float(parts["sdp_penalty"]) == pytest.approx(float(penalty), rel=1e-6)
    robust = 0.75 * parts["robust_ce"] + 0.25 * parts["pgd_ce"]
    expected = kappa * parts["ce"] + (1 - kappa) * robust + 2e-3 * (eps / 0.05) * parts["sdp_penalty"]
    assert float(parts["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert float((xa - xb).abs().max()) <= eps + 1e-7 and float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
    # the whole ball when there is no input box
    free = pgd_torch(trainer.model, xb, yb, 0.2, 0.1, 2, torch.Generator().manual_seed(0), None)
    assert float((free - xb).abs().max()) <= 0.2 + 1e-7 and float(free.min()) < 0.0
    # without the extras: no reg, and the loss is the plain mix
    plain = Trainer(TrainConfig(**TINY))
    assert plain.reg is None and set(batch_losses(plain, xb, yb)) == {"ce", "robust_ce", "loss"}


def test_extras_train_log_the_dual_certificate_and_resume_bit_for_bit(tmp_path):
    base = dict(TINY, cert_pgd_weight=0.5, cert_pgd_steps=2, cert_sdp_lambda=1e-3)
    full = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "full"), **base), progress=False)
    row = full["history"][-1]
    assert 0.0 <= row["dual_certified_error"] <= 1.0 and np.isfinite(row["dual_S_mean"])
    assert np.isfinite(row["train_pgd_ce"]) and np.isfinite(row["train_sdp_penalty"])
    train(TrainConfig(epochs=1, out_dir=str(tmp_path / "split"), **base), progress=False)
    resumed = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "split"), resume=True, **base), progress=False)
    for a, b in zip((full["net"].W, full["net"].V), (resumed["net"].W, resumed["net"].V)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(SdpcertError, match="other settings.*cert_sdp_lambda"):
        train(TrainConfig(epochs=3, out_dir=str(tmp_path / "split"), resume=True, **{**base, "cert_sdp_lambda": 0.0}),
              progress=False)


def test_cli_trains_on_the_packaged_sample_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--objective", "crown-box", "--hidden", "16", "--limit", "150", "--test-limit", "80",
              "--batch-size", "50", "--cert-warmup-epochs", "0", "--cert-ramp-epochs", "1", "--eps-train", "0.06",
              "--eval-eps", "0.05", "--cert-kappa-end", "0.5", "--cert-interval-weight", "0.2", "--out", str(out),
              "--no-progress"]
    assert main(common + ["--epochs", "1"]) == 0
    assert main(common + ["--epochs", "2", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "LP-cert over the box" in text and "LP-certified error over the input box" in text
    log = json.loads((out / "log.json").read_text())
    assert [r["epoch"] for r in log["epochs"]] == [1, 2]
    cfg = log["config"]
    assert cfg["objective"] == "crown-box" and cfg["input_domain"] == [0.0, 1.0] and cfg["cert_kappa_end"] == 0.5
    assert cfg["cert_interval_weight"] == 0.2 and cfg["eval_eps"] == 0.05
    net = TwoLayerNet.load(out / "model.npz")
    assert net.d == 784 and net.m == 16


@pytest.mark.parametrize("bad, message", [
    ({"cert_lower_slopes": "optimal"}, "cert_lower_slopes must be one of adaptive, chord"),
    ({"cert_kappa_end": 1.5}, r"cert_kappa_end must lie in \[0, 1\]"),
    ({"cert_kappa_start": -0.1}, "cert_kappa_start must be finite and >= 0"),
    ({"cert_interval_weight": 2.0}, r"cert_interval_weight must lie in \[0, 1\]"),
    ({"cert_pgd_weight": 1.5}, r"cert_pgd_weight must lie in \[0, 1\]"),
    ({"cert_pgd_steps": 0}, "cert_pgd_steps"),
    ({"cert_sdp_lambda": -1.0}, "cert_sdp_lambda must be finite and >= 0"),
    ({"sdp_hinge": "l2"}, "sdp_hinge must be one of ww, cs"),
    ({"cert_ramp_epochs": -1}, "cert_ramp_epochs"),
    ({"input_domain": [1.0, 0.0]}, "input_domain must be two finite numbers lo < hi"),
    ({"input_domain": "0,1"}, "input_domain must be None or two numbers"),
    ({"eval_eps": float("nan")}, "eval_eps must be finite and >= 0"),
    ({"objective": "crown"}, "unknown objective 'crown'"),
])
def test_bad_settings_are_clear_errors(bad, message):
    with pytest.raises(SdpcertError, match=message):
        TrainConfig(**{**TINY, **bad})


def test_bad_bound_arguments_and_data_outside_the_box(tmp_path):
    rng = np.random.default_rng(4)
    net = _tiny_net(rng)
    args = (*_torch_weights(net), torch.from_numpy(rng.uniform(0, 1, (2, 3))), torch.tensor([0, 1]), 0.1)
    with pytest.raises(SdpcertError, match="lower_slopes must be one of"):
        linear_margin_bounds_torch(*args, (0, 1), "tight")
    with pytest.raises(SdpcertError, match="interval_weight must lie in"):
        certified_cross_entropy(*args, interval_weight=1.5)
    with pytest.raises(SdpcertError, match="input domain"):
        outside = (*_torch_weights(net), torch.full((2, 3), 2.0, dtype=torch.float64), torch.tensor([0, 1]), 0.1)
        linear_margin_bounds_torch(*outside)
    data = tmp_path / "wide.npz"
    np.savez(data, X=rng.uniform(-1, 1, (60, 5)), y=rng.integers(0, 3, 60))
    with pytest.raises(SdpcertError, match="outside the input domain"):
        train(TrainConfig(**{**TINY, "limit": None, "test_limit": None, "data": str(data)}), progress=False)
    # the whole ball (no domain) trains on such data
    result = train(TrainConfig(**{**TINY, "limit": None, "test_limit": None, "data": str(data), "input_domain": None}),
                   progress=False)
    assert 0.0 <= result["history"][-1]["lp_box_certified_error"] <= 1.0


def test_cli_rejects_bad_options(capsys):
    assert main(["train", "--objective", "crown-box", "--epochs", "1", "--cert-lower-slopes", "tight"]) == 2
    assert "invalid choice: 'tight'" in capsys.readouterr().err
    assert main(["train", "--objective", "crown-box", "--epochs", "1", "--input-domain", "0"]) == 2
    assert "expected LO,HI" in capsys.readouterr().err
    assert main(["train", "--objective", "crown-box", "--epochs", "1", "--cert-kappa-end", "2",
                 "--no-progress"]) == 2
    assert "cert_kappa_end must lie in [0, 1]" in capsys.readouterr().err


def test_packaged_crown_box_nn_matches_its_record_and_its_certificates_hold():
    """The shipped crown-box-nn: its weights are the recorded ones, it was trained by this objective, and on 150 of
    the packaged test images every point `best` certifies over the ball intersected with [0, 1] at eps 0.1 survives
    PGD (which stays in [0, 1]); most of them are certified (a robust model, not a trivial one)."""
    from sdpcert import Certifier
    from sdpcert.attacks import pgd
    from sdpcert.model import available, load_pretrained, pretrained_info

    if "crown-box-nn" not in available():
        pytest.skip("crown-box-nn is not packaged in this checkout")
    net = load_pretrained("crown-box-nn")
    info = pretrained_info("crown-box-nn")
    assert info["fingerprint"] == net.fingerprint()
    assert info["trained_with"]["config"]["objective"] == "crown-box"
    assert info["evaluation"]["certified_points_broken"] == {"sdp": 0, "lp": 0}
    X, y = load_mnist_sample("test", limit=150)
    result = Certifier(net, input_domain=(0, 1)).certify(X, y, 0.1, "best")
    _, fooled = pgd(net, X, y, 0.1, steps=40, restarts=1)
    assert not np.any(result.certified & fooled)
    assert result.certified_error < 0.3
