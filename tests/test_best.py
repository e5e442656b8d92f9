"""``best`` (the cascade interval -> lp -> sdp -> spectral -> frobenius), executors and the command line of issue 10.

- best is never looser than any single method: it certifies every point any of its stages certifies, and where it
  certifies none its bound is the smallest of theirs; ``certified_by`` names a stage that certified the point.
- It stops per example: a point certified by interval is not handed to later stages, and when every point is
  certified early the pair SDPs are never solved.
- ``executor=``: the per-example work on a ``ProcessPoolExecutor`` or a Dask ``LocalCluster`` gives results
  identical to the serial run (same chunks, same code).
- CLI: ``certify --methods ...,best --input-domain 0,1`` (table, per-method counts, JSON) and
  ``attack --check-certificates --input-domain 0,1`` (certificates for the attacks' own box).
"""

from __future__ import annotations

import json
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet, load_mnist_sample
from sdpcert.certify import CASCADE, METHOD_TABLE
from sdpcert.cli import main

from helpers import train_small_mnist_net

STAGES = CASCADE  # every stage applies to a relu net


@pytest.fixture(scope="module")
def mnist():
    X, y = load_mnist_sample("test", limit=300, dtype="float64")
    return train_small_mnist_net(), X, y


def check_best(results: dict, eps: float, stages=STAGES) -> None:
    best = results[(eps, "best")]
    assert best.cascade == tuple(stages)
    for stage in stages:
        single = results[(eps, stage)]
        assert not np.any(single.certified & ~best.certified), stage  # never looser
        open_ = ~best.certified
        # Margins of the points left open: never larger, up to rounding. A stage run on best's open points only
        # batches its products differently from a run on all points (measured: lp-opt's PDHG margins differ by
        # 4.4e-16 absolute on one point, from sums of terms of order 1), and each is a proven bound either way; what
        # certifies is compared exactly above.
        single_open = single.worst_margin[open_]
        slack = 1e-12 * (1.0 + np.abs(single_open))
        assert np.all(best.worst_margin[open_] <= single_open + slack), stage
    by = best.certified_by
    assert np.all((by != "") == best.certified)
    for name in set(by[by != ""].tolist()):
        rows = by == name
        assert np.all(results[(eps, name)].certified[rows])  # the stage named did certify these points
        # and no earlier stage did (the cascade stops at the first)
        for earlier in stages[:stages.index(name)]:
            assert not np.any(results[(eps, earlier)].certified[rows])
    counts = best.certified_by_counts()
    assert list(counts) == list(stages) and sum(counts.values()) == int(best.certified.sum())
    assert best.summary()["certified_by"] == counts


def test_best_is_never_looser_than_any_method(mnist):
    net, X, y = mnist
    certifier = Certifier(net, input_domain=(0.0, 1.0))
    for eps in (0.02, 0.05, 0.1):
        grid = certifier.certify_grid(X, y, [eps], [*STAGES, "best"])
        check_best(grid, eps)
        # best on its own computes its stages itself (only for the points still open): the same certificates
        alone = certifier.certify(X, y, eps, "best")
        singles = {(eps, m): certifier.certify(X, y, eps, m) for m in STAGES}
        check_best({**singles, (eps, "best"): alone}, eps)
        np.testing.assert_array_equal(alone.certified, grid[(eps, "best")].certified)
    assert grid[(0.1, "best")].certified.sum() > grid[(0.1, "sdp")].certified.sum()  # the box and the LP help


def test_best_on_the_ball_and_on_smooth_nets():
    rng = np.random.default_rng(5)
    net = TwoLayerNet(rng.normal(size=(6, 3)), rng.normal(size=6) * 0.3, rng.normal(size=(3, 6)), np.zeros(3),
                      "tanh")
    X = rng.uniform(0, 1, size=(40, 3))
    y = np.argmax(net.forward(X), axis=1)
    certifier = Certifier(net, threads=1)
    stages = tuple(s for s in CASCADE if net.activation in METHOD_TABLE[s].activations)  # the LPs: relu only
    grid = certifier.certify_grid(X, y, [0.01, 0.05], [*stages, "best"])
    for eps in (0.01, 0.05):
        check_best(grid, eps, stages)
        assert grid[(eps, "best")].input_domain is None


def test_best_stops_early_and_skips_the_pair_sdps():
    """A net whose margins are large next to its weights: interval certifies every point, so no later stage runs and
    the pair SDPs are never solved (the cascade is per example, cheap first)."""
    rng = np.random.default_rng(11)
    net = TwoLayerNet(rng.normal(size=(4, 5)) * 1e-3, np.ones(4), rng.normal(size=(3, 4)), np.array([10.0, 0, 0]))
    X = rng.uniform(0, 1, size=(20, 5))
    y = np.argmax(net.forward(X), axis=1)
    certifier = Certifier(net, input_domain=(0.0, 1.0), threads=1)
    calls = []
    result = certifier.certify(X, y, 0.01, "best", progress=lambda *args: calls.append(args))
    assert result.certified.all() and set(result.certified_by.tolist()) == {"interval"}
    assert certifier.solved_pair_bounds() is None
    assert set(result.timings) == {"interval"}
    assert calls[0] == ("best: interval", 0, 20, 0) and calls[-1] == ("best: interval", 20, 20, 20)


# ------------------------------------------------------------------------------------------------ executors
def same_results(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].worst_margin, b[key].worst_margin, err_msg=str(key))
        np.testing.assert_array_equal(a[key].worst_class, b[key].worst_class, err_msg=str(key))
        if a[key].certified_by is not None:
            np.testing.assert_array_equal(a[key].certified_by, b[key].certified_by, err_msg=str(key))


def test_process_pool_executor_gives_the_serial_results(mnist):
    net, X, y = mnist
    X, y = X[:200], y[:200]
    certifier = Certifier(net, input_domain=(0.0, 1.0))
    certifier.pair_bounds()  # solved once here, shared by both runs
    methods = ["interval", "lp", "best"]
    serial = certifier.certify_grid(X, y, [0.05, 0.1], methods, chunk_size=64)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = certifier.certify_grid(X, y, [0.05, 0.1], methods, executor=pool, chunk_size=64)
    same_results(serial, parallel)
    # the chunk size is only a unit of work: the certificates do not depend on it
    other = certifier.certify_grid(X, y, [0.05, 0.1], methods, chunk_size=37)
    for key in serial:
        np.testing.assert_array_equal(serial[key].certified, other[key].certified)


def test_dask_executor_gives_the_serial_results(mnist):
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (the test extra)")
    net, X, y = mnist
    X, y = X[:120], y[:120]
    certifier = Certifier(net, input_domain=(0.0, 1.0))
    certifier.pair_bounds()
    serial = certifier.certify_grid(X, y, [0.1], ["interval", "lp", "best"], chunk_size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up / shutdown notices are not under test
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            parallel = certifier.certify_grid(X, y, [0.1], ["interval", "lp", "best"],
                                              executor=client.get_executor(), chunk_size=50)
    same_results(serial, parallel)


def test_every_per_example_method_is_a_module_level_function():
    """Executors pickle the per-example work: each table entry's margins must be importable by name."""
    for name, spec in METHOD_TABLE.items():
        if spec.margins is not None:
            assert spec.margins.__qualname__ == spec.margins.__name__ and "<" not in spec.margins.__qualname__, name


# ------------------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("best") / "net.npz"
    train_small_mnist_net().save(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_certify_best_with_the_box(capsys, tmp_path, model_file, monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)
    out_json = tmp_path / "best.json"
    code, out, err = run(capsys, "certify", model_file, "--eps", "0.05", "--limit", "300", "--methods",
                         "interval,lp,sdp,best", "--input-domain", "0,1", "--json", out_json)
    assert code == 0, err
    assert "input domain [0, 1]" in out and "best at eps 0.05: certified by interval" in out
    assert "best: interval" not in err  # no bar when stderr is not a terminal
    report = json.loads(out_json.read_text())
    assert report["input_domain"] == [0.0, 1.0] and report["methods"] == ["interval", "lp", "sdp", "best"]
    entries = {e["method"]: e for e in report["results"]}
    assert entries["sdp"]["input_domain"] is None and entries["lp"]["input_domain"] == [0.0, 1.0]
    X, y = load_mnist_sample("test", limit=300)
    direct = Certifier(train_small_mnist_net(), input_domain=(0.0, 1.0)).certify_grid(
        X, y, [0.05], ["interval", "lp", "sdp", "best"])
    for method, entry in entries.items():
        assert entry["certified_error"] == direct[(0.05, method)].certified_error
        assert f"{100 * entry['certified_error']:.1f}" in out
    assert entries["best"]["certified_by"] == direct[(0.05, "best")].certified_by_counts()
    assert sum(entries["best"]["certified_by"].values()) == round(300 * (1 - entries["best"]["certified_error"]))

    code, out, err = run(capsys, "certify", model_file, "--eps", "0.05", "--limit", "50", "--methods", "best",
                         "--input-domain", "none", "--no-progress")
    assert code == 0, err
    assert "the whole l_inf ball" in out


@pytest.mark.parametrize("text, words", [("1,0", ["lo < hi"]), ("0,1,2", ["LO,HI"]), ("a,b", ["LO,HI"]),
                                         ("nan,1", ["NaN"]), ("0.2,0.8", ["outside the input domain"])])
def test_cli_bad_input_domain(capsys, model_file, monkeypatch, text, words):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)
    code, out, err = run(capsys, "certify", model_file, "--eps", "0.05", "--limit", "20", "--methods", "interval",
                         "--input-domain", text)
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_cli_attack_checks_box_certificates_in_the_same_box(capsys, tmp_path, model_file, monkeypatch):
    monkeypatch.delenv("SDPCERT_MNIST_DIR", raising=False)
    out_json = tmp_path / "attack.json"
    code, out, err = run(capsys, "attack", model_file, "--eps", "0.05", "--limit", "100", "--steps", "10",
                         "--check-certificates", "--certify-methods", "lp,best", "--input-domain", "0,1",
                         "--json", out_json)
    assert code == 0, err
    assert "0 certified points broken" in out
    report = json.loads(out_json.read_text())
    assert report["certification_input_domain"] == [0.0, 1.0] and report["certification_methods"] == ["lp", "best"]
    assert report["results"][0]["certified"]["best"]["certified"] > 0
    code, out, err = run(capsys, "attack", model_file, "--eps", "0.05", "--limit", "20", "--check-certificates",
                         "--input-domain", "0.1,0.9")
    assert code == 2 and "the attacks search [0, 1]" in err
