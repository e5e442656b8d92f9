"""``sdpcert reproduce``: the plan (the paper's settings, the content hash), one network end to end with reuse and
resume on real MNIST, the command's input errors, and (slow) the whole --quick pipeline with its figures and report.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from sdpcert import SdpcertError
from sdpcert.cli import main
from sdpcert.experiments.reproduce import reproduce
from sdpcert.experiments.reproduce.plan import EVAL, NETWORK_KEYS, PAPER, config_hash, networks
from sdpcert.experiments.reproduce.training import DONE_NAME, run_folder


def _untimed(row: dict) -> dict:
    return {key: value for key, value in row.items() if not key.endswith("seconds")}


def test_full_plan_is_the_papers_networks_and_settings():
    specs = networks(quick=False)
    assert set(specs) == set(NETWORK_KEYS)
    sdp = specs["sdp"].train_config(None, "-")
    # Paper §6.3: lambda 0.05, lr 1e-3 -> 1e-5 in x0.1 steps every 30 epochs (so 90 epochs).
    assert (sdp.objective, sdp.sdp_lambda, sdp.lr, sdp.lr_decay_every, sdp.epochs) == ("sdp", 0.05, 1e-3, 30, 90)
    at = specs["at"].train_config(None, "-")
    assert (at.at_eps, at.at_step, at.at_steps) == (0.3, 0.1, 40)  # paper §6: PGD eps 0.3, step 0.1, 40 iterations
    fro, spe = specs["fro"].train_config(None, "-"), specs["spe"].train_config(None, "-")
    assert (fro.fro_coef, spe.spe_coef) == (0.08, 0.09)
    assert specs["sdp-weighted"].train_config(None, "-").weight_refresh_every == 20
    assert EVAL[False].pgd_restarts == 5 and EVAL[False].test_limit is None and EVAL[False].eps == 0.1
    assert PAPER["sdp"]["sdp_certified_error"] == 0.35 and PAPER["lp"]["lp_certified_error"] == 0.26


def test_content_hash_follows_the_settings_not_the_data_path():
    spec = networks(quick=True)["nt"]
    assert config_hash(spec, "/a/mnist") == config_hash(spec, "/b/mnist")  # the files' MD5s are checked on load
    assert config_hash(spec, "/a/mnist") != config_hash(spec, None)  # the packaged sample is other data
    longer = type(spec)(key=spec.key, name=spec.name, config={**spec.config, "epochs": spec.config["epochs"] + 1})
    assert config_hash(longer, "/a/mnist") != config_hash(spec, "/a/mnist")
    assert len({config_hash(s, "x") for s in networks(quick=False).values()}) == len(NETWORK_KEYS)


def test_one_network_end_to_end_then_reused_then_resumed(tmp_path, mnist_dir):
    data = str(mnist_dir)
    first = reproduce(tmp_path, data, quick=True, only=["nt"], progress=False)
    record = first["records"]["nt"]
    ev = record["eval"]
    assert ev["n"] == EVAL[True].test_limit and ev["broken"] == 0
    # Upper bounds above lower bounds on the same points: every certified error >= the best attack's error.
    for method in ("sdp", "spectral", "frobenius", "lp"):
        assert ev[f"{method}_certified_error"] >= ev["any_attack_error"]
    assert ev["sdp_certified_error"] <= min(ev["spectral_certified_error"], ev["frobenius_certified_error"])
    for name in ("REPORT.md", "table1.md", "fig2.png", "fig2.csv", "fig3a.png", "fig3a.csv"):
        assert (tmp_path / name).is_file(), name
    report = (tmp_path / "REPORT.md").read_text()
    assert f"{100 * ev['pgd_error']:.2f}%" in report and f"{100 * ev['sdp_certified_error']:.2f}%" in report

    # Same settings: nothing is trained or measured again.
    again = reproduce(tmp_path, data, quick=True, only=["nt"], progress=False)
    assert again["records"]["nt"]["eval"] == ev

    # An interrupted run (checkpoint, no marker) resumes instead of starting over: the weights stay the same.
    folder = run_folder(tmp_path, networks(quick=True)["nt"], data)
    model_bytes = (folder / "model.npz").read_bytes()
    (folder / DONE_NAME).unlink()
    (tmp_path / "results" / "nt.json").unlink()
    resumed = reproduce(tmp_path, data, quick=True, only=["nt"], progress=False)
    assert (folder / "model.npz").read_bytes() == model_bytes
    assert _untimed(resumed["records"]["nt"]["eval"]) == _untimed(ev)
    assert json.loads((folder / DONE_NAME).read_text())["epochs"] == networks(quick=True)["nt"].config["epochs"]


def test_cli_names_bad_input(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "nowhere")]) == 2
    assert "MNIST test files not found" in capsys.readouterr().err


def test_unknown_network_is_named(tmp_path, mnist_dir, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--data", str(mnist_dir), "--only", "nt,bogus"]) == 2
    assert "unknown network(s) bogus" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_pipeline_writes_every_figure_and_a_sound_report(tmp_path, mnist_dir):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--data", str(mnist_dir), "--no-progress"]) == 0
    for fig in ("fig2", "fig3a", "fig3b", "fig4a", "fig4b"):
        assert (tmp_path / f"{fig}.png").stat().st_size > 10_000 and (tmp_path / f"{fig}.csv").is_file()
    records = {key: json.loads((tmp_path / "results" / f"{key}.json").read_text()) for key in NETWORK_KEYS}
    assert all(rec["eval"]["broken"] == 0 for rec in records.values())
    assert all(row["broken"] == 0 for row in records["sdp"]["eps_curve"])
    # Fig. 4b: the training-time dual certificate can never beat the exact SDP (a feasible dual point is >= the
    # optimum); one image of slack for the exact solver's relative gap of 1e-6.
    rows = records["sdp"]["dual_vs_exact"]
    assert len(rows) == 4
    for row in rows:
        assert row["dual_certified_error"] >= row["exact_sdp_certified_error"] - 1 / row["n"]
    report = (tmp_path / "REPORT.md").read_text()
    assert "**Soundness:** 0 certified points broken" in report
    table = (tmp_path / "table1.md").read_text()
    for key in ("sdp", "lp"):
        ev = records[key]["eval"]
        assert f"{100 * ev['lp_certified_error']:.2f}%" in table and f"{100 * ev['pgd_error']:.2f}%" in table
    assert re.search(r"\| \| paper \| 15% \| 35% \| 99% \|", table)  # the paper's row, labelled


def test_partial_results_make_a_partial_report(tmp_path, mnist_dir):
    """Networks can be produced one at a time: with only NT-NN done, Fig. 3b / 4a / 4b are simply not drawn yet."""
    reproduce(tmp_path, str(mnist_dir), quick=True, only=["nt"], progress=False)
    assert not (tmp_path / "fig3b.png").exists() and not (tmp_path / "fig4b.png").exists()
    shutil.rmtree(tmp_path / "results")
    with pytest.raises(SdpcertError, match="no network has been evaluated"):
        reproduce(tmp_path, str(mnist_dir), quick=True, only=[], progress=False)
