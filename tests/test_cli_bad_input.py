"""Every command of the CLI (certify, attack, demo, train, reproduce) answers bad input with exit code 2 and an
``error:`` line, never a traceback; an unsound certificate is exit code 3 for every command that checks one; JSON
reports stay strict JSON when a number is not finite. Run in-process through ``sdpcert.cli.main`` on tiny models
and a few examples."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet
from sdpcert.cli import main
from sdpcert.model import MODEL_FORMAT_VERSION


@pytest.fixture(autouse=True)
def no_mnist_env(monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)


def tiny_weights(seed: int = 0, m: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(m, 784)) * 0.05, "b": np.zeros(m), "V": rng.normal(size=(10, m)), "b2": np.zeros(10)}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Model files, good and bad, and a few other paths, by name (used as {name} in the argument lists)."""
    folder = tmp_path_factory.mktemp("models")
    weights = tiny_weights()
    good = TwoLayerNet(**weights).save(folder / "good.npz")
    arrays = {**weights, "activation": np.array("relu"), "format_version": np.array(MODEL_FORMAT_VERSION)}
    out = {"good": good, "folder": folder, "missing": folder / "missing.npz", "nowhere": folder / "nowhere"}

    def savez(name, **changes):
        np.savez(folder / f"{name}.npz", **{**arrays, **changes})
        out[name] = folder / f"{name}.npz"

    nan_W = weights["W"].copy()
    nan_W[0, 5] = np.nan
    savez("nan", W=nan_W)
    savez("extra", extra=np.ones(3))
    savez("objects", V=np.array([[1.0, 2.0]], dtype=object))  # numpy pickles object arrays
    inexact = np.ones((4, 784), dtype=np.int64)
    inexact[1, 2] = 2 ** 53 + 1
    savez("inexact", W=inexact)
    out["pickled"] = folder / "pickled.npz"
    out["pickled"].write_bytes(pickle.dumps(arrays))
    out["truncated"] = folder / "truncated.npz"
    out["truncated"].write_bytes(good.read_bytes()[:300])
    out["garbage"] = folder / "garbage.npz"
    out["garbage"].write_bytes(b"this is not a model")
    # Finite weights whose logits overflow float64 on MNIST images (the audit's case: W ~ 1e306).
    rng = np.random.default_rng(0)
    out["overflow"] = TwoLayerNet(np.abs(rng.normal(size=(20, 784))) * 1e306, np.zeros(20),
                                  rng.normal(size=(10, 20)), np.zeros(10)).save(folder / "overflow.npz")
    out["blocker"] = folder / "a_file"
    out["blocker"].write_text("not a folder")
    return out


def run(capsys, paths, argv):
    code = main([str(a).format(**paths) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_input_error(code, out, err, words):
    """Exit code 2, an error line (ours: ``error: ...``; argparse's: ``sdpcert CMD: error: ...``), no traceback."""
    assert "Traceback" not in out + err, err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert lines and ("error: " in lines[-1]), err
    for word in words:
        assert word in err, (word, err)


MODEL_FILE_CASES = [
    ("{missing}", ["missing.npz", "does not exist"]),
    ("{garbage}", ["not an .npz"]),
    ("{truncated}", ["corrupt"]),
    ("{pickled}", ["not an .npz"]),
    ("{objects}", ["pickled Python objects"]),
    ("{extra}", ["unknown array(s) ['extra']"]),
    ("{nan}", ["non-finite"]),
    ("{inexact}", ["cannot represent exactly"]),
    ("{overflow}", ["logits"]),
    ("{folder}", ["not a regular file"]),
]
MODEL_FILE_IDS = ["missing", "garbage", "truncated", "pickle", "object-array", "unknown-key", "nan", "int>2^53",
                  "overflow", "folder"]


# ------------------------------------------------------------------------------------------------ certify
@pytest.mark.parametrize("model, words", MODEL_FILE_CASES, ids=MODEL_FILE_IDS)
def test_certify_bad_model_files(capsys, paths, model, words):
    code, out, err = run(capsys, paths, ["certify", model, "--eps", "0.1", "--limit", "3"])
    assert_input_error(code, out, err, words)


@pytest.mark.parametrize("argv, words", [
    (["--eps", "-0.1"], ["eps must be >= 0"]),
    (["--eps", "nan"], ["eps must be finite"]),
    (["--eps", "inf"], ["eps must be finite"]),
    (["--eps", "1e999"], ["eps must be finite"]),
    (["--eps", "abc"], ["expected a number"]),
    (["--eps", ","], ["expected at least one number"]),
    (["--eps", "0.1", "--limit", "0"], ["--limit 0 leaves no examples"]),
    (["--eps", "0.1", "--limit", "-1"], ["non-negative integer"]),
    (["--eps", "0.1", "--limit", "2.5"], ["non-negative integer"]),
    (["--eps", "0.1", "--methods", "milp"], ["unknown method"]),
    (["--eps", "0.1", "--methods", ","], ["unknown method"]),
    (["--eps", "0.1", "--rel-tol", "nan"], ["rel_tol"]),
    (["--eps", "0.1", "--rel-tol", "1"], ["rel_tol"]),
    (["--eps", "0.1", "--data", "{nowhere}"], ["nowhere", "no such folder"]),
    (["--eps", "0.1", "--data", "{folder}"], ["MNIST test files not found"]),
    (["--eps", "0.1", "--json", "{nowhere}/r.json"], ["does not exist"]),
    (["--eps", "0.1", "--split", "validation"], ["invalid choice"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and value and value[0].startswith("--") else None)
def test_certify_bad_arguments(capsys, paths, argv, words):
    code, out, err = run(capsys, paths, ["certify", "{good}", "--limit", "3", "--methods", "spectral", *argv]
                         if "--methods" not in argv and "--limit" not in argv else ["certify", "{good}", *argv])
    assert_input_error(code, out, err, words)


@pytest.fixture
def forget_pair_bounds():
    yield
    Certifier.clear_cache()  # the test below caches made-up values


def test_certify_json_with_an_infinite_pair_bound_is_strict_json(capsys, paths, tmp_path, monkeypatch,
                                                                 forget_pair_bounds):
    """A pair SDP upper bound that could not be proven is +inf: the report writes null and says where."""
    from sdpcert import _core

    real = _core.solve_pair_sdps

    def no_proof_for_the_first_pair(*args, **kwargs):
        result = dict(real(*args, **kwargs))
        result["upper"] = np.array(result["upper"], dtype=np.float64)
        result["upper"][0] = np.inf
        return result

    monkeypatch.setattr(_core, "solve_pair_sdps", no_proof_for_the_first_pair)
    model = TwoLayerNet(**tiny_weights(seed=123)).save(tmp_path / "model.npz")  # a model no other test caches
    report_path = tmp_path / "report.json"
    code, out, err = main(["certify", str(model), "--eps", "0.1", "--limit", "3", "--methods", "sdp,spectral",
                           "--json", str(report_path)]), *capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    report = json.loads(report_path.read_text(), parse_constant=refuse)
    assert report["pair_sdp"]["upper"][0][1] is None and report["pair_sdp"]["upper"][1][0] is None
    assert report["pair_sdp"]["upper"][0][2] > 0
    listed = report["non_finite"]["values"]
    assert "pair_sdp.upper[0][1]: inf" in listed and "pair_sdp.upper[1][0]: inf" in listed
    assert "null" in report["non_finite"]["note"]
    sdp = next(r for r in report["results"] if r["method"] == "sdp")
    assert sdp["certified_error"] == 1.0  # pair (0, 1) has no finite bound: no example of class 0 or 1 certifies
    code, out, _ = main(["certify", "--help"]), *capsys.readouterr()
    assert "null" in " ".join(out.split())


# ------------------------------------------------------------------------------------------------ attack
@pytest.mark.parametrize("model, words", MODEL_FILE_CASES, ids=MODEL_FILE_IDS)
def test_attack_bad_model_files(capsys, paths, model, words):
    code, out, err = run(capsys, paths, ["attack", model, "--eps", "0.1", "--limit", "3", "--steps", "2"])
    assert_input_error(code, out, err, words)


@pytest.mark.parametrize("argv, words", [
    (["--eps", "-0.1"], ["eps must be >= 0"]),
    (["--eps", "nan"], ["eps must be finite"]),
    (["--eps", "abc"], ["expected a number"]),
    (["--eps", "0.1", "--limit", "0"], ["--limit 0 leaves no examples"]),
    (["--eps", "0.1", "--methods", "fgsm,deepfool"], ["unknown attack", "deepfool"]),
    (["--eps", "0.1", "--methods", "sdp"], ["unknown attack"]),
    (["--eps", "0.1", "--steps", "0"], ["--steps must be a positive integer"]),
    (["--eps", "0.1", "--steps", "1.5"], ["invalid int value"]),
    (["--eps", "0.1", "--seed", "-1"], ["seed"]),
    (["--eps", "0.1", "--seed", str(2 ** 64)], ["seed"]),
    (["--eps", "0.1", "--step-size", "inf"], ["--step-size must be positive"]),
    (["--eps", "0.1", "--data", "{nowhere}"], ["no such folder"]),
    (["--eps", "0.1", "--json", "{nowhere}/r.json"], ["does not exist"]),
])
def test_attack_bad_arguments(capsys, paths, argv, words):
    base = ["attack", "{good}", "--steps", "2", "--methods", "fgsm"]
    if "--limit" not in argv:
        base += ["--limit", "3"]
    if "--methods" in argv:
        base = ["attack", "{good}", "--limit", "3"]
    code, out, err = run(capsys, paths, [*base, *argv])
    assert_input_error(code, out, err, words)


# ------------------------------------------------------------------------------------------------ demo
@pytest.mark.parametrize("argv, words", [
    (["--eps", "-1"], ["eps must be >= 0"]),
    (["--eps", "nan"], ["eps must be finite"]),
    (["--eps", "x"], ["expected a number"]),
    (["--seconds", "0"], ["seconds must be a positive"]),
    (["--seconds", "nan"], ["seconds must be a positive"]),
    (["--epochs", "0"], ["positive integer"]),
    (["--seed", "-1"], ["seed"]),
    (["--out", "{blocker}/sub"], ["a_file"]),
])
def test_demo_bad_arguments(capsys, paths, argv, words):
    code, out, err = run(capsys, paths, ["demo", "--seconds", "1", "--epochs", "1", "--skip-packaged",
                                         "--out", "{folder}/demo", *argv])
    assert_input_error(code, out, err, words)


# ------------------------------------------------------------------------------------------------ train
@pytest.mark.parametrize("argv, words", [
    (["--device", "cuda:99"], ["cuda:99", "CUDA"]),  # no machine has 100 GPUs; without CUDA: none usable
    (["--device", "bogus"], ["device must name a torch device"]),
    (["--device", "meta"], ["meta"]),
    (["--data", "{nowhere}"], ["nowhere"]),
    (["--lr", "nan"], ["lr must be finite"]),
    (["--eps-train", "-1"], ["eps_train"]),
    (["--epochs", "0"], ["positive integer"]),
    (["--hidden", "-3"], ["non-negative integer"]),
    (["--seed", "-1"], ["seed"]),
    (["--objective", "milp"], ["invalid choice"]),
    (["--resume"], ["cannot resume"]),
])
def test_train_bad_arguments_fail_before_any_work(capsys, paths, tmp_path, argv, words):
    out_dir = tmp_path / "run"
    base = ["train", "--objective", "nt", "--epochs", "1", "--hidden", "4", "--limit", "20", "--test-limit", "20",
            "--no-progress", "--out", str(out_dir)]
    code, out, err = run(capsys, paths, [*base, *argv])
    assert_input_error(code, out, err, words)
    assert not (out_dir / "model.npz").exists() and not (out_dir / "checkpoint.pt").exists()
    if "--device" in argv:
        assert not out_dir.exists()  # refused before the output folder is created or anything is loaded


# ------------------------------------------------------------------------------------------------ reproduce
def test_reproduce_bad_arguments(capsys, paths, tmp_path):
    code, out, err = run(capsys, paths, ["reproduce", "--out", str(tmp_path / "r"), "--data", "{nowhere}"])
    assert_input_error(code, out, err, ["MNIST test files not found"])
    code, out, err = run(capsys, paths, ["reproduce", "--out", str(tmp_path / "r"), "--data", "{folder}"])
    assert_input_error(code, out, err, ["MNIST test files not found"])
    code, out, err = run(capsys, paths, ["reproduce", "--quick"])  # --out is required
    assert_input_error(code, out, err, ["--out"])


def test_reproduce_bad_arguments_with_mnist(capsys, paths, mnist_dir):
    code, out, err = run(capsys, paths, ["reproduce", "--quick", "--out", "{folder}/r", "--data", str(mnist_dir),
                                         "--only", "nt,bogus", "--no-progress"])
    assert_input_error(code, out, err, ["unknown network(s) bogus"])
    code, out, err = run(capsys, paths, ["reproduce", "--quick", "--out", "{blocker}", "--data", str(mnist_dir),
                                         "--only", "nt", "--no-progress"])
    assert_input_error(code, out, err, ["a_file"])


def test_reproduce_unsound_certificate_exits_3(capsys, paths, mnist_dir, monkeypatch, forget_pair_bounds):
    """A certified point broken by an attack stops reproduce with exit code 3 (UnsoundCertificateError), like
    ``attack --check-certificates`` and ``demo``; training is replaced by a tiny saved model, the attacks' result by
    one broken point."""
    from sdpcert.experiments.reproduce import evaluate as evaluate_module
    from sdpcert.experiments.reproduce import pipeline
    from sdpcert.experiments.reproduce.plan import config_hash
    from sdpcert.experiments.reproduce.training import run_folder
    from sdpcert.training import LOG_JSON_NAME, MODEL_NAME

    def fake_training(out, spec, data, progress=True, log=None):
        folder = run_folder(out, spec, data)
        folder.mkdir(parents=True, exist_ok=True)
        TwoLayerNet(**tiny_weights(seed=7)).save(folder / MODEL_NAME)
        (folder / LOG_JSON_NAME).write_text(json.dumps({"epochs": []}))
        return {"key": spec.key, "name": spec.name, "hash": config_hash(spec, data), "epochs": 1,
                "train_seconds": 0.0, "reused": False}

    monkeypatch.setattr(pipeline, "train_or_reuse", fake_training)
    monkeypatch.setattr(evaluate_module, "error_vs_eps", lambda *args, **kwargs: [{"eps": 0.1, "broken": 1}])
    out_dir = paths["folder"] / "unsound"
    code, out, err = run(capsys, paths, ["reproduce", "--quick", "--out", str(out_dir), "--data", str(mnist_dir),
                                         "--only", "nt", "--no-progress"])
    assert code == 3 and "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1].startswith("error: NT-NN: 1 certified points were broken")
    assert not (out_dir / "results" / "nt.json").exists()
