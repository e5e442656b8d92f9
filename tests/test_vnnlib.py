"""VNNLIB properties (sdpcert.vnnlib) and the commands around them: write -> read gives the same box and label;
``sdpcert verify`` answers unsat where the certifier proves the box, sat with a counterexample this test re-checks
in numpy, unknown otherwise; every VNNLIB file outside the subset is one error line naming the line, exit code 2;
``sdpcert export-vnnlib`` writes one file per example (and the model as ONNX), or nothing on bad input."""

from __future__ import annotations

import functools

import re
from fractions import Fraction

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet, attacks
from sdpcert.certify import input_bounds
from sdpcert.errors import SdpcertError, ShapeError
from sdpcert.vnnlib import (RobustnessProperty, VnnlibError, format_number, read_vnnlib, verify_property,
                            write_vnnlib)

from helpers import assert_one_line_error as one_line_error, run_cli as run


assert_one_line_error = functools.partial(one_line_error, quiet_stdout=True)  # and no answer, no table


@pytest.fixture(autouse=True)
def no_mnist_env(monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)




def small_net(d: int = 6, m: int = 5, k: int = 3, seed: int = 0) -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k))


def numpy_logits(net: TwoLayerNet, x: np.ndarray) -> np.ndarray:
    """The logits computed here, independently of the package: V relu(W x + b) + b2."""
    return net.V @ np.maximum(net.W @ x + net.b, 0.0) + net.b2


def confident_point(net: TwoLayerNet, seed: int = 1) -> tuple[np.ndarray, int]:
    """A point in [0, 1]^d whose top logit leads by at least 0.5 (so a small box around it is provably robust)."""
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        x = rng.uniform(0.2, 0.8, size=net.d)
        logits = numpy_logits(net, x)
        top = np.sort(logits)
        if top[-1] - top[-2] >= 0.5:
            return x, int(np.argmax(logits))
    raise AssertionError("no confident point found")


# ------------------------------------------------------------------------------------------------ round trip
def test_format_number_reads_back_exactly():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=200), rng.uniform(0, 1, 200), 10.0 ** rng.uniform(-30, 30, 100),
                             [0.0, -0.0, 1.0, -1.0, 0.1, 1e-300, 5e-324, 1.7976931348623157e308, -2.5]])
    for value in values:
        text = format_number(value)
        assert "e" not in text.lower() and float(text) == value, (value, text)
    with pytest.raises(SdpcertError, match="non-finite"):
        format_number(np.inf)


@pytest.mark.parametrize("domain", [None, (0.0, 1.0)])
def test_write_read_round_trip(tmp_path, domain):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=12)
    x[0], x[1] = 0.0, 1.0  # on the domain's edge: clipped there
    path = write_vnnlib(tmp_path / "p.vnnlib", x, 2, 0.1, 4, input_domain=domain)
    prop = read_vnnlib(path)
    assert isinstance(prop, RobustnessProperty)
    assert (prop.d, prop.k, prop.y) == (12, 4, 2)
    lo, hi = input_bounds(x[None, :], 0.1, None if domain is None else (np.zeros(12), np.ones(12)))
    np.testing.assert_array_equal(prop.lo, lo[0])
    np.testing.assert_array_equal(prop.hi, hi[0])
    eps = Fraction(0.1)
    for i in range(12):  # in exact arithmetic the box holds the ball (intersected with the domain)
        low, high = Fraction(x[i]) - eps, Fraction(x[i]) + eps
        if domain is not None:
            low, high = max(low, Fraction(0)), min(high, Fraction(1))
        assert Fraction(prop.lo[i]) <= low and Fraction(prop.hi[i]) >= high
    if domain is not None:
        assert prop.lo[0] == 0.0 and prop.hi[1] == 1.0
    text = path.read_text()
    assert "(assert (or" in text and "(and (>= Y_0 Y_2))" in text and "(>= Y_2 Y_2)" not in text
    assert text.count("(declare-const X_") == 12 and text.count("(declare-const Y_") == 4


def test_write_vnnlib_refuses_bad_arguments(tmp_path):
    x = np.full(4, 0.5)
    cases = [
        (dict(x=x, y=3, eps=0.1, k=3), "labels"),
        (dict(x=x, y=0, eps=-0.1, k=3), "eps must be >= 0"),
        (dict(x=x, y=0, eps=0.1, k=1), "k must be >= 2"),
        (dict(x=np.ones((2, 4)), y=0, eps=0.1, k=3), "one example"),
        (dict(x=np.array([0.5, np.nan, 0, 0]), y=0, eps=0.1, k=3), "NaN"),
        (dict(x=np.array([0.5, 2.0, 0, 0]), y=0, eps=0.1, k=3, input_domain=(0, 1)), "outside the input domain"),
    ]
    for kwargs, word in cases:
        with pytest.raises(SdpcertError, match=word):
            write_vnnlib(tmp_path / "bad.vnnlib", **kwargs)
    assert not (tmp_path / "bad.vnnlib").exists()


# ------------------------------------------------------------------------------------------------ answers
@pytest.fixture
def onnx_net(tmp_path):
    pytest.importorskip("onnx")
    net = small_net()
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    return net, path


def test_verify_unsat_where_the_certifier_certifies(capsys, tmp_path, onnx_net):
    net, onnx_path = onnx_net
    x, label = confident_point(net)
    eps = 0.01
    assert Certifier(net).certify(x[None, :], [label], eps, "best").certified[0]
    prop_path = write_vnnlib(tmp_path / "p.vnnlib", x, label, eps, net.k)
    code, out, err = run(capsys, "verify", onnx_path, prop_path, "--counterexample", tmp_path / "cex.txt")
    assert code == 0 and out == "unsat\n", err
    assert not (tmp_path / "cex.txt").exists()
    assert verify_property(net, read_vnnlib(prop_path)).answer == "unsat"


def test_verify_sat_with_a_counterexample_rechecked_here(capsys, tmp_path, onnx_net):
    net, onnx_path = onnx_net
    x, label = confident_point(net)
    eps = 3.0  # the ball covers [0, 1]^d: the property's box is the whole domain, where PGD finds another class
    _, fooled = attacks.pgd(net, x[None, :], [label], eps, steps=50, restarts=2, loss="margin")
    assert fooled[0]
    prop_path = write_vnnlib(tmp_path / "p.vnnlib", x, label, eps, net.k, input_domain=(0, 1))
    cex = tmp_path / "cex.txt"
    code, out, err = run(capsys, "verify", onnx_path, prop_path, "--counterexample", cex)
    assert code == 0 and out == "sat\n", err

    text = cex.read_text()
    assert text.startswith("((X_0 ") and text.rstrip().endswith(")")
    pairs = re.findall(r"\(([XY])_(\d+) (-?[0-9.]+)\)", text)
    xs = {int(i): float(v) for kind, i, v in pairs if kind == "X"}
    ys = {int(j): float(v) for kind, j, v in pairs if kind == "Y"}
    assert sorted(xs) == list(range(net.d)) and sorted(ys) == list(range(net.k))
    x_cex = np.array([xs[i] for i in range(net.d)])
    assert np.all(x_cex >= 0) and np.all(x_cex <= 1)  # inside the property's box, [0, 1]^d
    logits = numpy_logits(net, x_cex)
    np.testing.assert_allclose([ys[j] for j in range(net.k)], logits, rtol=1e-12, atol=1e-12)
    assert np.max(np.delete(logits, label)) >= logits[label]  # really another class at least as high


def cancelling_net() -> TwoLayerNet:
    """f_0 - f_1 = relu(x) - relu(x) + 1 = 1 everywhere: robust on every box, but interval bounds on [-5, 5] lose
    it (each relu(x) in [0, 5] independently), and no attack can find a counterexample."""
    return TwoLayerNet(np.array([[1.0], [1.0]]), np.zeros(2), np.array([[1.0, -1.0], [0.0, 0.0]]),
                       np.array([1.0, 0.0]))


def test_verify_unknown(capsys, tmp_path):
    net = cancelling_net()
    net_path = net.save(tmp_path / "net.npz")
    prop_path = write_vnnlib(tmp_path / "p.vnnlib", np.array([0.0]), 0, 5.0, 2)
    code, out, err = run(capsys, "verify", net_path, prop_path, "--methods", "interval", "--steps", "20",
                         "--restarts", "2")
    assert code == 0 and out == "unknown\n", err
    assert "not certified by interval" in err
    # a timeout that runs out before the first stage: unknown as well, saying why
    code, out, err = run(capsys, "verify", net_path, prop_path, "--timeout", "1e-9")
    assert code == 0 and out == "unknown\n" and "timeout" in err, err


def test_verify_proves_exactly_the_file_box(tmp_path):
    """A box that is not a ball (per-coordinate widths, a degenerate coordinate): unsat holds for the file's box."""
    net = cancelling_net()
    prop = RobustnessProperty(lo=np.array([-3.0]), hi=np.array([-3.0]), y=0, k=2)
    assert verify_property(net, prop, methods=("interval",)).answer == "unsat"  # a point: interval is exact there
    wide = RobustnessProperty(lo=np.array([-3.0]), hi=np.array([4.0]), y=0, k=2)
    assert verify_property(net, wide, methods=("interval",), steps=5, restarts=1).answer == "unknown"
    assert verify_property(net, RobustnessProperty(lo=np.array([-3.0]), hi=np.array([4.0]), y=1, k=2),
                           methods=("interval",), steps=5, restarts=1).answer == "sat"


def test_verify_proves_the_box_not_the_ball_around_it():
    """f_0 - f_1 = 1 - 10 relu(x_1): robust on the box x_0 in [-5, 5], x_1 in [0, 0.05], not on the ball of radius 5
    around its centre. The per-example methods prove the box itself; a whole-ball method cannot, and there is no
    counterexample in the box to find."""
    net = TwoLayerNet(np.array([[0.0, 1.0]]), np.zeros(1), np.array([[-10.0], [0.0]]), np.array([1.0, 0.0]))
    prop = RobustnessProperty(lo=np.array([-5.0, 0.0]), hi=np.array([5.0, 0.05]), y=0, k=2)
    assert verify_property(net, prop, methods=("interval",)).answer == "unsat"
    assert verify_property(net, prop, methods=("spectral",), steps=10, restarts=1).answer == "unknown"


def test_verify_property_refuses_a_mismatched_model():
    prop = RobustnessProperty(lo=np.zeros(3), hi=np.ones(3), y=0, k=2)
    with pytest.raises(ShapeError, match="d = 3 inputs and k = 2 outputs"):
        verify_property(small_net(d=6, k=3), prop)


# ------------------------------------------------------------------------------------------------ bad files
GOOD = """; a comment
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 0.25))
(assert (<= X_1 1.0))
(assert (>= X_1 -0.5))
(assert (or
    (and (>= Y_0 Y_1))
    (and (>= Y_2 Y_1))
))
"""

BAD_FILES = [
    ("unclosed", GOOD.replace("(assert (>= X_1 -0.5))", "(assert (>= X_1 -0.5)"), "line 10", "never closed"),
    ("other-op", GOOD.replace("(assert (<= X_0 0.5))", "(assert (< X_0 0.5))"), "line 7", "outside the VNNLIB subset"),
    ("output-bound", GOOD.replace("(assert (>= X_0 0.25))", "(assert (>= Y_0 0.25))"), "line 8", "input X_i"),
    ("no-lower", GOOD.replace("(assert (>= X_1 -0.5))\n", ""), "line 3", "X_1 has no lower"),
    ("twice", GOOD.replace("(assert (<= X_1 1.0))", "(assert (<= X_1 1.0))\n(assert (<= X_1 2.0))"), "line 10",
     "second upper bound"),
    ("incomplete", GOOD.replace("    (and (>= Y_2 Y_1))\n", ""), "line 11", "leaves out Y_2"),
    ("undeclared", GOOD.replace("(assert (<= X_1 1.0))", "(assert (<= X_7 1.0))"), "line 9", "before it is declared"),
    ("empty-box", GOOD.replace("(assert (>= X_0 0.25))", "(assert (>= X_0 0.75))"), "line 7", "the box is empty"),
    ("not-a-number", GOOD.replace("0.25", "abc"), "line 8", "a decimal number"),
    ("huge-number", GOOD.replace("0.25", "1e999"), "line 8", "not a finite float64"),
    ("two-labels", GOOD.replace("(and (>= Y_2 Y_1))", "(and (>= Y_2 Y_0))"), "line 13", "one label"),
    ("conjunction", GOOD.replace("(and (>= Y_2 Y_1))", "(and (>= Y_2 Y_1) (>= Y_0 Y_1))"), "line 13",
     "(and (>= Y_j Y_y))"),
    ("second-output", GOOD + "(assert (or (and (>= Y_0 Y_1))))\n", "line 15", "second output property"),
    ("stray-atom", GOOD + "sat\n", "line 15", "outside any (...) form"),
    ("not-declare", GOOD.replace("(declare-const X_0 Real)", "(define-fun X_0 () Real 0.0)"), "line 2",
     "(declare-const NAME Real)"),
    ("int-type", GOOD.replace("(declare-const Y_2 Real)", "(declare-const Y_2 Int)"), "line 6", "Real"),
]


@pytest.mark.parametrize("name, text, line, words", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_read_vnnlib_names_the_line_outside_the_subset(tmp_path, name, text, line, words):
    path = tmp_path / f"{name}.vnnlib"
    path.write_text(text)
    with pytest.raises(VnnlibError) as exc:
        read_vnnlib(path)
    message = str(exc.value)
    assert "\n" not in message and f"{line}:" in message and words in message, message


def test_read_vnnlib_accepts_the_good_file(tmp_path):
    path = tmp_path / "good.vnnlib"
    path.write_text(GOOD)
    prop = read_vnnlib(path)
    assert (prop.d, prop.k, prop.y) == (2, 3, 1)
    np.testing.assert_array_equal(prop.lo, [0.25, -0.5])
    np.testing.assert_array_equal(prop.hi, [0.5, 1.0])


def test_verify_bad_inputs_are_one_line_errors(capsys, tmp_path):
    net = small_net(d=2, k=3)
    net_path = net.save(tmp_path / "net.npz")
    bad = tmp_path / "bad.vnnlib"
    bad.write_text(BAD_FILES[1][1])
    code, out, err = run(capsys, "verify", net_path, bad)
    assert_one_line_error(code, out, err, "bad.vnnlib", "line 7")
    binary = tmp_path / "binary.vnnlib"
    binary.write_bytes(b"(declare-const X_0 Real)\n\xff\xfe")
    code, out, err = run(capsys, "verify", net_path, binary)
    assert_one_line_error(code, out, err, "line 2", "UTF-8")
    code, out, err = run(capsys, "verify", net_path, tmp_path / "missing.vnnlib")
    assert_one_line_error(code, out, err, "no such VNNLIB file")
    good = tmp_path / "good.vnnlib"
    good.write_text(GOOD)
    other = small_net(d=6, k=3).save(tmp_path / "other.npz")
    code, out, err = run(capsys, "verify", other, good)
    assert_one_line_error(code, out, err, "d = 2 inputs", "d = 6")
    code, out, err = run(capsys, "verify", net_path, good, "--counterexample", tmp_path / "nowhere" / "c.txt")
    assert_one_line_error(code, out, err, "does not exist")
    code, out, err = run(capsys, "verify", net_path, good, "--timeout", "-1")
    assert_one_line_error(code, out, err, "timeout must be positive")
    code, out, err = run(capsys, "verify", net_path, good, "--methods", "lp,milp")
    assert code == 2 and "unknown method" in err and out == ""


# ------------------------------------------------------------------------------------------------ export-vnnlib
def test_export_vnnlib_writes_one_file_per_example_and_the_onnx_model(capsys, tmp_path):
    pytest.importorskip("onnx")
    out_dir = tmp_path / "props"
    code, out, err = run(capsys, "export-vnnlib", "sdp-nn", "--eps", "0.05", "--indices", "0,5,9", "--out", out_dir,
                         "--input-domain", "0,1", "--onnx")
    assert code == 0, err
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["model.onnx", "prop_0_eps_0.05.vnnlib", "prop_5_eps_0.05.vnnlib", "prop_9_eps_0.05.vnnlib"]
    from sdpcert import load_mnist_sample
    from sdpcert.model import load_pretrained

    X, y = load_mnist_sample("test", limit=10, dtype="float64")
    prop = read_vnnlib(out_dir / "prop_5_eps_0.05.vnnlib")
    lo, hi = input_bounds(X[5:6], 0.05, (np.zeros(784), np.ones(784)))
    assert prop.y == y[5] and prop.k == 10
    np.testing.assert_array_equal(prop.lo, lo[0])
    np.testing.assert_array_equal(prop.hi, hi[0])
    assert TwoLayerNet.from_onnx(out_dir / "model.onnx").fingerprint() == load_pretrained("sdp-nn").fingerprint()


@pytest.mark.parametrize("argv, words", [
    (["--indices", "0,1000"], ["--indices 1000", "1000 examples"]),
    (["--limit", "2", "--input-domain", "0.5,1"], ["--input-domain", "outside"]),
    (["--limit", "2", "--eps", "-1"], ["eps must be >= 0"]),
    (["--limit", "0"], ["--limit 0"]),
])
def test_export_vnnlib_bad_input_writes_nothing(capsys, tmp_path, argv, words):
    out_dir = tmp_path / "props"
    base = ["export-vnnlib", "sdp-nn", "--out", out_dir]
    if "--eps" not in argv:
        base += ["--eps", "0.1"]
    code, out, err = run(capsys, *base, *argv)
    assert_one_line_error(code, out, err, *words)
    assert not out_dir.exists()
