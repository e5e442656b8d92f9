"""Data sets and models beyond MNIST and .npz on the command line: ``--data`` takes any folder of MNIST-format IDX
files or an ``.npz`` with X and y (certify, attack, train, demo), the reports name the data set, its size and its
sha256, d and k follow the data, ``.onnx`` models load through TwoLayerNet.from_onnx; every bad file is one error
line and exit code 2 with nothing written. The data sets are made here from the packaged MNIST sample with altered
pixels (so no md5 of MNIST matches)."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet, load_mnist_sample
from sdpcert.data import load_dataset

from helpers import assert_one_line_error, run_cli as run


@pytest.fixture(autouse=True)
def no_mnist_env(monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)




def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> bytes:
    """Write one split's images and labels files; returns images bytes + labels bytes (what load_dataset hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = b""
    for stem, data in ((f"{prefix}-images-idx3-ubyte", idx_bytes(images, 2051)),
                       (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 2049))):
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
        payload += data
    return payload


def fashion_like(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n images of the packaged sample's split with inverted pixels: MNIST-shaped, not MNIST."""
    X, y = load_mnist_sample(split, limit=n)
    pixels = np.round(X * 255).astype(np.uint8).reshape(n, 28, 28)
    return 255 - pixels, y


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    """A Fashion-MNIST-like IDX folder (300 train images gzipped, 100 test images raw) and its test split's bytes."""
    folder = tmp_path_factory.mktemp("data") / "fashion"
    write_idx_split(folder, "train", *fashion_like("train", 300), gz=True)
    test_bytes = write_idx_split(folder, "t10k", *fashion_like("test", 100))
    return folder, hashlib.sha256(test_bytes).hexdigest()


def random_net(d: int, m: int, k: int, seed: int = 0, scale: float = 0.1) -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    return TwoLayerNet(rng.normal(size=(m, d)) * scale, rng.normal(size=m) * 0.1, rng.normal(size=(k, m)),
                       np.zeros(k))


def points(n: int = 120, d: int = 20, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small k-class data set in [0, 1]^d whose label follows the first coordinate."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, d))
    return X, np.minimum((X[:, 0] * k).astype(np.int64), k - 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    X, y = points()
    np.savez(folder / "points.npz", X=X, y=y)
    return {"points": folder / "points.npz",
            "net784": random_net(784, 8, 10).save(folder / "net784.npz"),
            "net20": random_net(20, 6, 3, scale=1.0).save(folder / "net20.npz"),
            "folder": folder}


# ------------------------------------------------------------------------------------------------ certify, attack
def test_certify_on_an_idx_folder_of_another_data_set(capsys, tmp_path, fashion_dir, files):
    folder, test_sha256 = fashion_dir
    report_path = tmp_path / "r.json"
    code, out, err = run(capsys, "certify", files["net784"], "--eps", "0.01", "--data", folder, "--limit", "50",
                         "--methods", "sdp,lp", "--json", report_path)
    assert code == 0, err
    assert "md5" not in err and "packaged" not in err
    assert f"fashion test from {folder}" in out and "(n = 50)" in out
    assert f"data: fashion (test): 50 examples, 784 inputs, 10 classes, sha256 {test_sha256[:16]}" in out
    report = json.loads(report_path.read_text())
    data = report["data"]
    assert (data["name"], data["split"], data["n"], data["d"], data["k"]) == ("fashion", "test", 50, 784, 10)
    assert data["sha256"] == test_sha256 and data["verified"] == "structure" and data["limit"] == 50
    # the numbers are the library's on the same data
    X, y = load_dataset(folder, "test", limit=50, dtype=np.float64)
    certifier = Certifier(TwoLayerNet.load(files["net784"]))
    for entry in report["results"]:
        assert entry["certified_error"] == certifier.certify(X, y, 0.01, entry["method"]).certified_error


def test_certify_the_packaged_sdp_nn_on_a_folder_with_mnists_names_and_sizes(capsys, tmp_path):
    """The issue's case: Fashion-MNIST has MNIST's file names and sizes but other md5s, and used to stop with MNIST's
    md5 check. Here a test split of MNIST's size (10,000 inverted sample images)."""
    images, labels = fashion_like("test", 1000)
    folder = tmp_path / "fashion-mnist"
    write_idx_split(folder, "t10k", np.tile(images, (10, 1, 1)), np.tile(labels, 10))
    code, out, err = run(capsys, "certify", "sdp-nn", "--eps", "0.05", "--data", folder, "--limit", "20",
                         "--methods", "spectral")
    assert code == 0, err
    assert "fashion-mnist (test): 20 examples, 784 inputs, 10 classes" in out and "checked: structure" in out
    # the same files in a folder called mnist claim to be MNIST: its md5s are checked, and they fail
    folder.rename(tmp_path / "mnist")
    code, out, err = run(capsys, "certify", "sdp-nn", "--eps", "0.05", "--data", tmp_path / "mnist", "--limit", "20")
    assert_one_line_error(code, out, err, "md5", "claim to be MNIST")


def test_certify_and_attack_an_npz_with_its_own_d_and_k(capsys, tmp_path, files):
    report_path = tmp_path / "r.json"
    code, out, err = run(capsys, "certify", files["net20"], "--eps", "0.001,0.01", "--data", files["points"],
                         "--methods", "sdp,spectral,best", "--input-domain", "0,1", "--json", report_path)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    file_sha256 = hashlib.sha256(files["points"].read_bytes()).hexdigest()
    assert report["data"]["sha256"] == file_sha256 and report["data"]["split"] is None
    assert (report["data"]["n"], report["data"]["d"], report["data"]["k"]) == (120, 20, 3)
    assert len(report["pair_sdp"]["pairs"]) == 3  # k = 3: 3 class pairs
    assert f"points: 120 examples, 20 inputs, 3 classes, sha256 {file_sha256[:16]}" in out

    report_path = tmp_path / "a.json"
    code, out, err = run(capsys, "attack", files["net20"], "--eps", "0.05", "--data", files["points"], "--methods",
                         "fgsm,pgd", "--steps", "5", "--check-certificates", "--certify-methods", "sdp,best",
                         "--json", report_path)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["data"]["sha256"] == file_sha256 and report["n"] == 120
    assert "0 certified points broken" in out


def test_model_and_data_must_agree_on_d_and_k(capsys, tmp_path, files, fashion_dir):
    X, y = points(k=4)
    four = tmp_path / "four.npz"
    np.savez(four, X=X, y=y)
    cases = [
        (["certify", files["net784"], "--eps", "0.1", "--data", files["points"]], ["d = 784 inputs", "20 features"]),
        (["attack", files["net20"], "--eps", "0.1", "--data", fashion_dir[0]], ["d = 20 inputs", "784 features"]),
        (["certify", files["net20"], "--eps", "0.1", "--data", four], ["k = 3 classes", "k = 4"]),
        (["export-vnnlib", files["net20"], "--eps", "0.1", "--data", four, "--out", tmp_path / "props"],
         ["k = 3 classes"]),
    ]
    for argv, words in cases:
        code, out, err = run(capsys, *argv, "--json", tmp_path / "r.json") if argv[0] != "export-vnnlib" else \
            run(capsys, *argv)
        assert_one_line_error(code, out, err, *words)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "props").exists()


def bad_npz(folder: Path, name: str) -> Path:
    X, y = points(n=10)
    arrays = {"X": X, "y": y}
    if name == "int-X":
        arrays["X"] = (X * 10).astype(np.int64)
    elif name == "1d-X":
        arrays["X"] = X[:, 0]
    elif name == "float-y":
        arrays["y"] = y.astype(np.float64)
    elif name == "nan":
        arrays["X"] = X.copy()
        arrays["X"][3, 4] = np.nan
    elif name == "negative-label":
        arrays["y"] = y - 1
    elif name == "short-y":
        arrays["y"] = y[:5]
    elif name == "extra-array":
        arrays["mean"] = np.zeros(3)
    elif name == "object-y":
        arrays["y"] = np.array(list(y), dtype=object)
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("name, words", [
    ("int-X", ["X must hold floats"]),
    ("1d-X", ["shape (n, d)"]),
    ("float-y", ["y must hold integers"]),
    ("nan", ["NaN/inf", "[3, 4]"]),
    ("negative-label", ["labels must be >= 0"]),
    ("short-y", ["y must have shape (10,)"]),
    ("extra-array", ["exactly the arrays X and y", "'mean'"]),
    ("object-y", ["not a plain .npz"]),
])
def test_bad_npz_files_are_one_line_errors(capsys, tmp_path, files, name, words):
    path = bad_npz(tmp_path, name)
    report_path = tmp_path / "r.json"
    code, out, err = run(capsys, "certify", files["net20"], "--eps", "0.1", "--data", path, "--json", report_path)
    assert_one_line_error(code, out, err, f"{name}.npz", *words)
    assert not report_path.exists()


def test_labels_beyond_the_model_and_bad_idx_folders(capsys, tmp_path, files):
    X, y = points()
    y[7] = 9
    beyond = tmp_path / "beyond.npz"
    np.savez(beyond, X=X, y=y)
    code, out, err = run(capsys, "certify", files["net20"], "--eps", "0.1", "--data", beyond)
    assert_one_line_error(code, out, err, "k = 3 classes", "k = 10")

    images, labels = fashion_like("test", 10)
    good = idx_bytes(images, 2051)
    cases = {
        "bad-magic": (struct.pack(">I", 2049) + good[4:], idx_bytes(labels, 2049), "bad IDX magic number"),
        "truncated": (good[:-30], idx_bytes(labels, 2049), "truncated"),
        "count-mismatch": (good, idx_bytes(labels[:7], 2049), "holds 10 images but"),
        "trailing": (good + b"\0\0", idx_bytes(labels, 2049), "trailing"),
    }
    for name, (images_bytes, labels_bytes, word) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "t10k-images-idx3-ubyte").write_bytes(images_bytes)
        (folder / "t10k-labels-idx1-ubyte").write_bytes(labels_bytes)
        code, out, err = run(capsys, "certify", files["net784"], "--eps", "0.1", "--data", folder)
        assert_one_line_error(code, out, err, word)
    code, out, err = run(capsys, "certify", files["net784"], "--eps", "0.1", "--data", tmp_path / "nowhere")
    assert_one_line_error(code, out, err, "nowhere", "no such folder")
    text = tmp_path / "data.csv"
    text.write_text("1,2\n")
    code, out, err = run(capsys, "certify", files["net784"], "--eps", "0.1", "--data", text)
    assert_one_line_error(code, out, err, "not a folder of IDX files or an .npz")


def test_mnist_dir_variable_must_hold_mnist(capsys, monkeypatch, fashion_dir, files):
    monkeypatch.setenv("SDPCERT_MNIST_DIR", str(fashion_dir[0]))
    code, out, err = run(capsys, "certify", files["net784"], "--eps", "0.1", "--limit", "3")
    assert_one_line_error(code, out, err, "$SDPCERT_MNIST_DIR", "MNIST's names and sizes", "--data")


# ------------------------------------------------------------------------------------------------ ONNX models
@pytest.fixture
def onnx():
    return pytest.importorskip("onnx")


def test_onnx_models_certify_and_attack_as_their_npz(capsys, tmp_path, files, onnx):
    net = TwoLayerNet.load(files["net20"])
    onnx_path = tmp_path / "net20.onnx"
    net.to_onnx(onnx_path, dtype=np.float64)
    reports = []
    for model in (files["net20"], onnx_path):
        report_path = tmp_path / f"{Path(model).stem}{Path(model).suffix}.json"
        code, out, err = run(capsys, "certify", model, "--eps", "0.01", "--data", files["points"], "--methods",
                             "sdp,lp", "--json", report_path)
        assert code == 0, err
        reports.append(json.loads(report_path.read_text()))
    assert reports[0]["model"]["fingerprint"] == reports[1]["model"]["fingerprint"]
    assert [r["certified_error"] for r in reports[0]["results"]] == [r["certified_error"] for r in reports[1]["results"]]
    code, out, err = run(capsys, "attack", onnx_path, "--eps", "0.05", "--data", files["points"], "--methods", "pgd",
                         "--steps", "5")
    assert code == 0, err


def test_bad_onnx_graphs_are_one_line_errors(capsys, tmp_path, files, onnx):
    model = TwoLayerNet.load(files["net20"]).to_onnx(dtype=np.float64)
    other_op = onnx.ModelProto()
    other_op.CopyFrom(model)
    other_op.graph.node[1].op_type = "LeakyRelu"
    (tmp_path / "leaky.onnx").write_bytes(other_op.SerializeToString())
    code, out, err = run(capsys, "certify", tmp_path / "leaky.onnx", "--eps", "0.1", "--data", files["points"])
    assert_one_line_error(code, out, err, "leaky.onnx", "node #1 (LeakyRelu", "not supported")

    shapes = onnx.ModelProto()
    shapes.CopyFrom(model)
    for i, init in enumerate(shapes.graph.initializer):
        if init.name == "V":
            shapes.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(np.ones((3, 4)), "V"))
    (tmp_path / "shapes.onnx").write_bytes(shapes.SerializeToString())
    code, out, err = run(capsys, "certify", tmp_path / "shapes.onnx", "--eps", "0.1", "--data", files["points"])
    assert_one_line_error(code, out, err, "shapes.onnx", "do not chain")

    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf at all \xff")
    code, out, err = run(capsys, "attack", tmp_path / "garbage.onnx", "--eps", "0.1", "--data", files["points"])
    assert_one_line_error(code, out, err, "garbage.onnx")

    code, out, err = run(capsys, "certify", tmp_path / "missing.onnx", "--eps", "0.1")
    assert_one_line_error(code, out, err, "missing.onnx", "no such ONNX file")


def test_onnx_without_the_onnx_package(capsys, tmp_path, files, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    code, out, err = run(capsys, "certify", tmp_path / "net.onnx", "--eps", "0.1", "--data", files["points"])
    assert_one_line_error(code, out, err, "pip install")


# ------------------------------------------------------------------------------------------------ train, demo
def test_train_on_an_npz_with_three_classes(capsys, tmp_path, files, one_torch_thread):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--objective", "sdp", "--epochs", "2", "--hidden", "6", "--data",
                         files["points"], "--no-progress", "--out", out_dir)
    assert code == 0, err
    net = TwoLayerNet.load(out_dir / "model.npz")
    assert (net.d, net.m, net.k) == (20, 6, 3)
    log = json.loads((out_dir / "log.json").read_text())
    assert log["data"]["train"]["sha256"] == hashlib.sha256(files["points"].read_bytes()).hexdigest()
    assert log["data"]["train"]["k"] == 3 and "dual_certified_error" in log["epochs"][-1]
    assert "train data: points: 120 examples, 20 inputs, 3 classes" in out
    assert "measured on the training data itself" in err


def test_train_on_an_idx_folder(capsys, tmp_path, fashion_dir, one_torch_thread):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--objective", "nt", "--epochs", "1", "--hidden", "8", "--data",
                         fashion_dir[0], "--no-progress", "--out", out_dir)
    assert code == 0, err
    log = json.loads((out_dir / "log.json").read_text())
    assert (log["data"]["train"]["name"], log["data"]["train"]["n"]) == ("fashion", 300)
    assert (log["data"]["test"]["split"], log["data"]["test"]["sha256"]) == ("test", fashion_dir[1])
    assert TwoLayerNet.load(out_dir / "model.npz").k == 10


def test_train_refuses_bad_data_before_any_work(capsys, tmp_path):
    X, y = points()
    outside = tmp_path / "outside.npz"
    np.savez(outside, X=X * 3 - 1, y=y)
    out_dir = tmp_path / "run"
    for data, objective, words in ((bad_npz(tmp_path, "nan"), "nt", ["nan.npz", "NaN"]),
                                   (outside, "at", ["objective at", "[0, 1]"]),
                                   (tmp_path / "nowhere", "nt", ["nowhere", "no such folder or file"])):
        code, out, err = run(capsys, "train", "--objective", objective, "--epochs", "1", "--hidden", "4", "--data",
                             data, "--no-progress", "--out", out_dir)
        assert_one_line_error(code, out, err, *words)
        assert not (out_dir / "model.npz").exists() and not (out_dir / "checkpoint.pt").exists()


def test_attack_and_demo_need_inputs_in_the_unit_box(capsys, tmp_path, files):
    X, y = points()
    outside = tmp_path / "outside.npz"
    np.savez(outside, X=X * 3 - 1, y=y)
    code, out, err = run(capsys, "attack", files["net20"], "--eps", "0.1", "--data", outside)
    assert_one_line_error(code, out, err, "outside from", "must lie in [0, 1]")
    code, out, err = run(capsys, "demo", "--data", outside, "--seconds", "1", "--epochs", "1", "--out",
                         tmp_path / "demo")
    assert_one_line_error(code, out, err, "demo data outside", "must lie in it")
    assert not (tmp_path / "demo").exists()


def test_demo_on_another_data_set(capsys, tmp_path, fashion_dir):
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--data", fashion_dir[0], "--seconds", "1", "--epochs", "1", "--eps", "0.01",
                         "--out", out_dir)
    assert code == 0, err
    assert "784-100-10 ReLU net, fashion test" in out and "(n = 100)" in out
    assert "skipping part 2" in err and "the demo net" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["data"]["test"]["sha256"] == fashion_dir[1] and summary["packaged_sdp_nn"] is None
    assert summary["broken_total"] == 0
