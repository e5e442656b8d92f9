"""``sdpcert attack``, run in-process through ``sdpcert.cli.main``: the table and the JSON report carry the numbers of
``sdpcert.attacks`` on the same points and settings; ``--check-certificates`` passes on a real trained net and fails
loudly (exit 3) when a certificate is made unsound; bad input is one ``error: ...`` line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet, load_mnist_sample
from sdpcert.certify import growth as bounds_module
from sdpcert.attacks import attack_error, cw_linf, evaluate_attacks, fgsm, pgd
from sdpcert.certify import methods_for
from test_cli import assert_clean_error, model_path, no_mnist_env, run  # noqa: F401  (fixtures)

N = 200
STEPS = 5


@pytest.fixture(scope="module")
def points():
    return load_mnist_sample("test", limit=N, dtype="float64")


def test_attack_table_and_json_match_the_library(capsys, tmp_path, model_path, points, no_mnist_env):
    out_json = tmp_path / "attack.json"
    code, out, err = run(capsys, "attack", model_path, "--eps", "0.02,0.05", "--limit", N, "--steps", STEPS,
                         "--restarts", 2, "--seed", 3, "--json", out_json)
    assert code == 0, err
    assert "packaged MNIST sample" in err
    for word in ("eps", "clean", "FGSM", "PGD", "CW", "error %", "lower bound", "timings:", f"(n = {N})",
                 f"{STEPS} steps", "2 restarts", "seed 3"):
        assert word in out, word
    assert "certified" not in out and "broken" not in out  # no certification without --check-certificates

    net = TwoLayerNet.load(model_path)
    X, y = points
    report = json.loads(out_json.read_text())
    assert report["model"]["fingerprint"] == net.fingerprint()
    assert report["n"] == N and report["data"]["n"] == N
    assert report["eps"] == [0.02, 0.05]
    assert report["attacks"] == ["fgsm", "pgd", "cw"]
    assert report["settings"]["steps"] == STEPS and report["settings"]["restarts"] == 2
    assert report["settings"]["seed"] == 3 and report["settings"]["step_size"] is None
    assert report["check_certificates"] is False and "broken_total" not in report
    assert {"load", "attacks", "total"} <= set(report["timings"])
    assert set(report["timings"]["attacks"]) == {"fgsm", "pgd", "cw"}

    clean_error = float(np.mean(np.argmax(net.forward(X), axis=1) != y))
    assert len(report["results"]) == 2
    for row in report["results"]:
        eps = row["eps"]
        assert row["n"] == N and row["clean_error"] == clean_error
        direct = {"fgsm": fgsm(net, X, y, eps)[1],
                  "pgd": pgd(net, X, y, eps, steps=STEPS, restarts=2, seed=3)[1],
                  "cw": cw_linf(net, X, y, eps, steps=STEPS, restarts=2, seed=3)[1]}
        for name, fooled in direct.items():
            assert row["attacks"][name]["error"] == float(fooled.mean()), (eps, name)
            assert row["attacks"][name]["fooled"] == int(fooled.sum()), (eps, name)
            assert row["attacks"][name]["error"] >= row["clean_error"]
            assert f"{100 * fooled.mean():.1f}" in out
        any_fooled = direct["fgsm"] | direct["pgd"] | direct["cw"]
        assert row["any_error"] == float(any_fooled.mean()) and row["any_fooled"] == int(any_fooled.sum())
        assert "certified" not in row
    assert f"{100 * clean_error:.1f}" in out

    # the same numbers through the library's own aggregate entry points
    eps = 0.05
    agg = evaluate_attacks(net, X, y, eps, options={"pgd": {"steps": STEPS, "restarts": 2, "seed": 3},
                                                     "cw": {"steps": STEPS, "restarts": 2, "seed": 3}})
    row = report["results"][1]
    assert row["clean_error"] == agg["clean_error"] and row["any_error"] == agg["error"]
    assert {m: row["attacks"][m]["error"] for m in agg["errors"]} == agg["errors"]
    assert row["attacks"]["fgsm"]["error"] == attack_error(net, X, y, eps, "fgsm")


def test_attack_subset_step_size_and_single_eps(capsys, tmp_path, model_path, points, no_mnist_env):
    out_json = tmp_path / "pgd.json"
    code, out, err = run(capsys, "attack", model_path, "--eps", "0.03", "--methods", "PGD", "--limit", N,
                         "--steps", STEPS, "--step-size", "0.01", "--json", out_json)
    assert code == 0, err
    assert "PGD" in out and "FGSM" not in out and "CW" not in out and "any" not in out
    report = json.loads(out_json.read_text())
    assert report["eps"] == 0.03 and report["attacks"] == ["pgd"]
    assert report["settings"]["step_size"] == 0.01 and report["settings"]["step_size_used"] == {"0.03": 0.01}
    X, y = points
    fooled = pgd(TwoLayerNet.load(model_path), X, y, 0.03, steps=STEPS, step_size=0.01)[1]
    (row,) = report["results"]
    assert row["attacks"] == {"pgd": {"error": float(fooled.mean()), "fooled": int(fooled.sum())}}


def test_attack_check_certificates_on_a_trained_net(capsys, tmp_path, model_path, points, no_mnist_env):
    out_json = tmp_path / "check.json"
    code, out, err = run(capsys, "attack", model_path, "--eps", "0.01,0.05", "--limit", N, "--steps", STEPS,
                         "--check-certificates", "--json", out_json)
    assert code == 0, err
    assert "0 certified points broken by FGSM, PGD, CW" in out
    assert "UNSOUND" not in err  # (no "pair SDPs" bar when an earlier test already cached this model's bounds)
    for word in ("sdp", "spectral", "frobenius", "lp", "certified", "upper bound", "certify"):
        assert word in out, word

    net = TwoLayerNet.load(model_path)
    X, y = points
    report = json.loads(out_json.read_text())
    methods = list(methods_for(net))
    assert report["check_certificates"] is True and report["certification_methods"] == methods
    assert report["broken_total"] == 0
    direct = Certifier(net, input_domain=(0.0, 1.0)).certify_grid(X, y, [0.01, 0.05], methods)  # auto: pixels
    for row in report["results"]:
        assert set(row["certified"]) == set(methods)
        for m, c in row["certified"].items():
            result = direct[(row["eps"], m)]
            assert c["certified_error"] == result.certified_error
            assert c["certified"] == int(result.certified.sum())
            assert c["broken"] == 0 and c["broken_indices"] == [] and set(c["broken_by"].values()) == {0}
            assert c["certified_error"] >= row["any_error"] - 1e-12  # upper bound >= lower bound (may meet it)
            assert f"{100 * result.certified_error:.1f}" in out
    assert report["results"][0]["certified"]["sdp"]["certified_error"] < 0.9  # real certificates, not vacuous ones


def test_attack_check_certificates_fails_loudly_when_unsound(capsys, tmp_path, model_path, monkeypatch,
                                                              no_mnist_env):
    """Make the SDP bound unsound (growth 0): the attacks break certified points, exit code 3."""
    monkeypatch.setattr(bounds_module, "sdp_growth", lambda net, upper: np.zeros((net.k, net.k)))
    out_json = tmp_path / "bad.json"
    code, out, err = run(capsys, "attack", model_path, "--eps", "0.1", "--limit", N, "--steps", STEPS,
                         "--methods", "fgsm,pgd", "--check-certificates", "--json", out_json)
    assert code == 3
    assert "Traceback" not in err
    assert "UNSOUND: eps 0.1, sdp:" in err and "spectral" not in err.split("UNSOUND", 1)[1]
    assert "certified points broken by FGSM, PGD: a certificate is wrong" in out
    report = json.loads(out_json.read_text())
    (row,) = report["results"]
    assert report["broken_total"] == row["certified"]["sdp"]["broken"] > 0
    assert row["certified"]["spectral"]["broken"] == 0 and row["certified"]["lp"]["broken"] == 0


def test_attack_bad_input(capsys, tmp_path, model_path, no_mnist_env):
    code, _, err = run(capsys, "attack", tmp_path / "nope.npz", "--eps", "0.1")
    assert_clean_error(code, err, "nope.npz", "does not exist")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a model")
    code, _, err = run(capsys, "attack", garbage, "--eps", "0.1")
    assert_clean_error(code, err, "garbage.npz", "not an .npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model_path.read_bytes()[:300])
    code, _, err = run(capsys, "attack", truncated, "--eps", "0.1")
    assert_clean_error(code, err, "truncated.npz", "corrupt")

    for argv, words in (
        (["--eps", "-0.1"], ["eps must be >= 0"]),
        (["--eps", "0.1,-0.05"], ["eps must be >= 0"]),
        (["--eps", "inf"], ["eps must be finite"]),
        (["--eps", "0.1", "--methods", "fgsm,deepfool"], ["unknown attack", "deepfool", "fgsm,pgd,cw"]),
        (["--eps", "0.1", "--methods", ","], ["unknown attack"]),
        (["--eps", "0.1", "--steps", "0"], ["--steps must be a positive integer"]),
        (["--eps", "0.1", "--restarts", "-2"], ["--restarts must be a positive integer"]),
        (["--eps", "0.1", "--step-size", "0"], ["--step-size must be positive"]),
        (["--eps", "0.1", "--step-size", "nan"], ["--step-size must be positive"]),
        (["--eps", "0.1", "--json", tmp_path / "no" / "r.json"], ["does not exist"]),
        (["--eps", "0.1", "--data", tmp_path / "nowhere"], ["nowhere", "no such folder"]),
        (["--eps", "0.1", "--limit", "0"], ["no examples"]),
    ):
        code, out, err = run(capsys, "attack", model_path, *argv)
        assert_clean_error(code, err, *words)
        assert out == "", argv

    wrong_d = tmp_path / "wrong_d.npz"
    rng = np.random.default_rng(0)
    TwoLayerNet(rng.normal(size=(4, 5)), np.zeros(4), rng.normal(size=(10, 4)), np.zeros(10)).save(wrong_d)
    code, _, err = run(capsys, "attack", wrong_d, "--eps", "0.1")
    assert_clean_error(code, err, "wrong_d.npz", "d = 5 inputs", "784 features")

    # usage errors: argparse's message, exit code 2, no traceback
    for argv in (["attack", model_path], ["attack", model_path, "--eps", "abc"],
                 ["attack", model_path, "--eps", "0.1", "--steps", "many"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err and "error" in err, (argv, err)


def test_attack_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "attack" in out
    code, out, _ = run(capsys, "attack", "--help")
    assert code == 0
    for option in ("--eps", "--methods", "--steps", "--restarts", "--step-size", "--seed", "--check-certificates",
                   "--json", "--limit"):
        assert option in out, option
