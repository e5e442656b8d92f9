"""The command line, run in-process through ``sdpcert.cli.main``: ``certify`` (table, JSON, data sources, errors)
and ``demo`` (a short run writes its files and passes its own PGD check; a broken certificate makes it fail)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.certify import growth as bounds_module
from sdpcert.cli import main
from sdpcert.experiments.demo import run_demo


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A 784-20-10 ReLU net trained for a moment on the packaged slice, saved as .npz."""
    X, y = load_mnist_sample("train")
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny GEMMs: much faster than competing threads on a busy 2-core machine
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 20), nn.ReLU(), nn.Linear(20, 10))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(4):
            for lo in range(0, len(y_t), 200):
                loss = nn.functional.cross_entropy(model(X_t[lo:lo + 200]), y_t[lo:lo + 200])
                loss = loss + 0.05 * (model[0].weight.norm() + model[2].weight.norm())
                opt.zero_grad()
                loss.backward()
                opt.step()
    torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("model") / "small.npz"
    TwoLayerNet.from_torch(model).save(path)
    return path


@pytest.fixture
def no_mnist_env(monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ certify
def test_certify_table_and_json(capsys, tmp_path, model_path, no_mnist_env):
    out_json = tmp_path / "report.json"
    code, out, err = run(capsys, "certify", model_path, "--eps", "0.01,0.05", "--json", out_json)
    assert code == 0, err
    assert "packaged MNIST sample" in err  # says that it fell back to the packaged data
    for word in ("eps", "clean", "sdp", "spectral", "frobenius", "lp", "certified", "pair SDPs", "max relative gap",
                 "certify"):
        assert word in out, word

    report = json.loads(out_json.read_text())
    net = TwoLayerNet.load(model_path)
    assert report["model"]["fingerprint"] == net.fingerprint()
    assert report["n"] == 1000 and report["data"]["n"] == 1000
    assert report["eps"] == [0.01, 0.05]
    upper, lower = np.array(report["pair_sdp"]["upper"]), np.array(report["pair_sdp"]["lower"])
    assert upper.shape == lower.shape == (10, 10)
    np.testing.assert_array_equal(upper, upper.T)
    assert np.all(upper >= lower) and report["pair_sdp"]["max_relative_gap"] <= 1e-5
    assert {"load", "pair_sdp", "certify"} <= set(report["timings"])

    # the numbers are those of the library, and each one is in the table
    X, y = load_mnist_sample("test")
    certifier = Certifier(net, input_domain=(0.0, 1.0))  # the default for data in [0, 1]: pixels
    np.testing.assert_array_equal(upper, certifier.pair_bounds().upper)
    assert len(report["results"]) == 10  # 2 radii x (sdp, spectral, frobenius, lp, best): all that apply to ReLU
    assert {e["method"] for e in report["results"]} == {"sdp", "spectral", "frobenius", "lp", "best"}
    assert "input domain [0, 1]" in out
    for entry in report["results"]:
        direct = certifier.certify(X, y, entry["eps"], entry["method"])
        assert entry["certified_error"] == direct.certified_error
        assert entry["clean_error"] == direct.clean_error
        assert entry["n"] == 1000
        assert f"{100 * direct.certified_error:.1f}" in out
    sdp_small = next(e for e in report["results"] if e["method"] == "sdp" and e["eps"] == 0.01)
    assert sdp_small["certified_error"] < 0.9  # a real certificate, not a vacuous one


def test_certify_subset_of_methods_and_limit(capsys, model_path, tmp_path, no_mnist_env):
    out_json = tmp_path / "r.json"
    code, out, err = run(capsys, "certify", model_path, "--eps", "0.02", "--methods", "spectral",
                         "--limit", "200", "--split", "train", "--json", out_json)
    assert code == 0, err
    report = json.loads(out_json.read_text())
    assert report["n"] == 200 and report["eps"] == 0.02 and report["methods"] == ["spectral"]
    assert "pair_sdp" not in report  # no SDP requested, none solved
    assert "frobenius" not in out and "spectral" in out


def test_certify_full_mnist_folder(capsys, model_path, mnist_dir, monkeypatch):
    code, out, err = run(capsys, "certify", model_path, "--eps", "0.01", "--data", mnist_dir, "--limit", "300")
    assert code == 0, err
    assert "packaged" not in err and f"from {mnist_dir}" in out
    monkeypatch.setenv("SDPCERT_MNIST_DIR", str(mnist_dir))
    code, out, err = run(capsys, "certify", model_path, "--eps", "0.01", "--limit", "300", "--methods", "frobenius")
    assert code == 0, err
    assert "$SDPCERT_MNIST_DIR" in out and "(n = 300)" in out


def assert_clean_error(code, err, *words):
    """Exit code 2 and one `error: ...` line (the last line of stderr; notes may precede it), no traceback."""
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, err
    for word in words:
        assert word in lines[-1], (word, err)


def test_certify_missing_model(capsys, tmp_path, no_mnist_env):
    code, out, err = run(capsys, "certify", tmp_path / "nope.npz", "--eps", "0.1")
    assert_clean_error(code, err, "nope.npz", "does not exist")


def test_certify_corrupt_models(capsys, tmp_path, model_path, no_mnist_env):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a model")
    code, _, err = run(capsys, "certify", garbage, "--eps", "0.1")
    assert_clean_error(code, err, "garbage.npz", "not an .npz")

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model_path.read_bytes()[:300])
    code, _, err = run(capsys, "certify", truncated, "--eps", "0.1")
    assert_clean_error(code, err, "truncated.npz", "corrupt")

    missing_array = tmp_path / "missing.npz"
    with zipfile.ZipFile(model_path) as src, zipfile.ZipFile(missing_array, "w") as dst:
        for item in src.namelist():
            if item != "V.npy":
                dst.writestr(item, src.read(item))
    code, _, err = run(capsys, "certify", missing_array, "--eps", "0.1")
    assert_clean_error(code, err, "missing.npz", "'V'")

    folder = tmp_path / "a_folder.npz"
    folder.mkdir()
    code, _, err = run(capsys, "certify", folder, "--eps", "0.1")
    assert_clean_error(code, err, "not a regular file")


def test_certify_bad_arguments(capsys, tmp_path, model_path, no_mnist_env, monkeypatch):
    code, _, err = run(capsys, "certify", model_path, "--eps", "-0.1")
    assert_clean_error(code, err, "eps must be >= 0")
    code, _, err = run(capsys, "certify", model_path, "--eps", "nan")
    assert_clean_error(code, err, "eps must be finite")
    code, _, err = run(capsys, "certify", model_path, "--eps", "0.1", "--rel-tol", "0")
    assert_clean_error(code, err, "rel_tol")
    code, _, err = run(capsys, "certify", model_path, "--eps", "0.1", "--json", tmp_path / "no" / "r.json")
    assert_clean_error(code, err, "does not exist")
    code, _, err = run(capsys, "certify", model_path, "--eps", "0.1", "--data", tmp_path / "nowhere")
    assert_clean_error(code, err, "nowhere", "no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "certify", model_path, "--eps", "0.1", "--data", empty)
    assert_clean_error(code, err, "MNIST test files not found")
    monkeypatch.setenv("SDPCERT_MNIST_DIR", str(empty))
    code, _, err = run(capsys, "certify", model_path, "--eps", "0.1")
    assert_clean_error(code, err, "SDPCERT_MNIST_DIR")
    monkeypatch.delenv("SDPCERT_MNIST_DIR")

    wrong_d = tmp_path / "wrong_d.npz"
    rng = np.random.default_rng(0)
    TwoLayerNet(rng.normal(size=(4, 5)), np.zeros(4), rng.normal(size=(10, 4)), np.zeros(10)).save(wrong_d)
    code, _, err = run(capsys, "certify", wrong_d, "--eps", "0.1")
    assert_clean_error(code, err, "wrong_d.npz", "d = 5 inputs", "784 features")

    # usage errors: argparse's message, exit code 2, no traceback
    for argv in (["certify", model_path], ["certify", model_path, "--eps", "abc"],
                 ["certify", model_path, "--eps", "0.1", "--methods", "milp"], ["frobnicate"], []):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err and "error" in err, (argv, err)


def test_help_version_and_module_entry(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "certify" in out and "demo" in out
    code, out, _ = run(capsys, "certify", "--help")
    assert code == 0 and "--eps" in out and "--json" in out
    proc = subprocess.run([sys.executable, "-m", "sdpcert", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("sdpcert ")
    proc = subprocess.run([sys.executable, "-m", "sdpcert", "certify", "/nonexistent/m.npz", "--eps", "0.1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: model file") and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ demo
def test_demo_short_run_writes_files(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    start = time.perf_counter()
    code, out, err = run(capsys, "demo", "--seconds", "5", "--out", out_dir)
    wall = time.perf_counter() - start
    assert code == 0, err
    assert "0 certified points broken by PGD" in out
    for word in ("PGD", "sdp", "spectral", "frobenius", "training:", "pair SDPs"):
        assert word in out
    summary = json.loads((out_dir / "summary.json").read_text())
    net = TwoLayerNet.load(out_dir / "model.npz")
    assert summary["model"]["fingerprint"] == net.fingerprint() and (net.d, net.m, net.k) == (784, 100, 10)
    assert summary["broken_total"] == 0
    assert summary["eps"] == [0.01, 0.02, 0.05]
    training = summary["training"]
    assert training["epochs"] >= 1 and training["seconds"] < 5 + 10  # stops at the first epoch after the budget
    assert training["stopped_by"] in ("time budget", "epochs")
    for entry in summary["results"]:
        assert entry["n"] == 1000
        assert entry["clean_error"] <= entry["pgd_error"]
        for method in ("sdp", "spectral", "frobenius"):
            m = entry["methods"][method]
            assert m["broken"] == 0 and m["certified_error"] >= entry["pgd_error"]
            assert m["certified"] == round(1000 * (1 - m["certified_error"]))
    # the demo net gets real certificates at the smallest radius
    assert summary["results"][0]["methods"]["sdp"]["certified_error"] < 0.6
    # part 2: the packaged SDP-NN, certified and attacked at eps 0.1 on the same images
    packaged = summary["packaged_sdp_nn"]
    assert packaged["eps"] == 0.1 and packaged["n"] == 1000 and packaged["broken_total"] == 0
    assert packaged["clean_error"] <= packaged["pgd_error"] <= packaged["methods"]["sdp"]["certified_error"] < 0.6
    assert "packaged SDP-NN" in out and "the paper's SDP-NN" in out
    assert wall < 90


def test_demo_is_deterministic(tmp_path):
    a = run_demo(60, tmp_path / "a", [0.02], seed=3, epochs=2, include_packaged=False)
    b = run_demo(60, tmp_path / "b", [0.02], seed=3, epochs=2, include_packaged=False)
    assert a["training"]["stopped_by"] == "epochs" and a["training"]["epochs"] == 2
    assert a["model"]["fingerprint"] == b["model"]["fingerprint"]
    assert a["results"] == b["results"]
    c = run_demo(60, tmp_path / "c", [0.02], seed=4, epochs=2, include_packaged=False)
    assert c["model"]["fingerprint"] != a["model"]["fingerprint"]


def test_demo_fails_loudly_when_a_certificate_is_broken(capsys, tmp_path, monkeypatch):
    """Make the SDP bound unsound (growth 0): PGD breaks certified points and the demo must exit non-zero."""
    monkeypatch.setattr(bounds_module, "sdp_growth", lambda net, upper: np.zeros((net.k, net.k)))
    code, out, err = run(capsys, "demo", "--seconds", "5", "--epochs", "3", "--eps", "0.2", "--out", tmp_path / "x",
                         "--skip-packaged")
    assert code == 3
    assert "UNSOUND" in err and "sdp" in err
    assert "certified points broken by PGD: a certificate is wrong" in out
    summary = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert summary["broken_total"] > 0 and summary["results"][0]["methods"]["sdp"]["broken"] > 0
    assert summary["results"][0]["methods"]["spectral"]["broken"] == 0


def test_demo_bad_arguments(capsys, tmp_path):
    with pytest.raises(SdpcertError, match="seconds must be a positive"):
        run_demo(0, tmp_path)
    with pytest.raises(SdpcertError, match="seconds must be a positive"):
        run_demo(float("nan"), tmp_path)
    with pytest.raises(SdpcertError, match="eps_list must be a non-empty"):
        run_demo(5, tmp_path, [])
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        run_demo(5, tmp_path, [0.01, -0.01])
    with pytest.raises(SdpcertError, match="epochs must be a positive integer"):
        run_demo(5, tmp_path, epochs=0)
    code, _, err = run(capsys, "demo", "--eps", "inf", "--out", tmp_path / "d")
    assert_clean_error(code, err, "eps must be finite")
    code, _, err = run(capsys, "demo", "--seconds", "-1", "--out", tmp_path / "d")
    assert_clean_error(code, err, "seconds must be a positive")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "demo", "--seconds", "1", "--out", blocker / "sub")
    assert_clean_error(code, err)


@pytest.mark.slow
def test_demo_full_default_run(capsys, tmp_path, monkeypatch):
    """The README quick start as shipped: `sdpcert demo` with its defaults, within ~90 s on 2 cores."""
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    code, out, err = run(capsys, "demo")
    wall = time.perf_counter() - start
    assert code == 0, err
    summary = json.loads((tmp_path / "sdpcert-demo" / "summary.json").read_text())
    assert summary["broken_total"] == 0
    assert summary["results"][0]["methods"]["sdp"]["certified_error"] < 0.3
    assert wall < 150
