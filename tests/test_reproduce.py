"""``sdpcert reproduce``: the plan (the paper's settings, the content hash), one network end to end with reuse and
resume on real MNIST, the command's input errors, and (slow) the whole --quick pipeline with its figures and report.
CROWN-box-NN (beyond the paper): its plan is the packaged crown-box-nn's recipe, adding it left the paper's seven
hashes (and so their stored runs) as they were, and the report shows it as ours, with its certificates over the box.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from sdpcert import SdpcertError
from sdpcert.cli import main
from sdpcert.experiments.reproduce import pipeline, reproduce
from sdpcert.experiments.reproduce.plan import (EVAL, EXTRA_KEYS, INPUT_BOX, NETWORK_KEYS, PAPER, PAPER_KEYS,
                                                config_hash, networks)
from sdpcert.experiments.reproduce.report import write_report
from sdpcert.experiments.reproduce.training import DONE_NAME, run_folder
from sdpcert.model import load_pretrained, pretrained_info
from sdpcert.training import LOG_JSON_NAME, MODEL_NAME, OBJECTIVES

#: The committed full run (docs/results/reproduce): its networks' folders are named ``<key>-<hash>``.
STORED_RUN = Path(__file__).resolve().parent.parent / "docs" / "results" / "reproduce"
#: CROWN-box-NN's hashes (full plan on MNIST; quick plan on the packaged sample): a change retrains it.
CROWN_BOX_HASHES = {False: "855ed74a5629", True: "7e9b3a8f4222"}


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


def test_the_plan_is_the_papers_seven_then_crown_box_in_both_modes():
    assert PAPER_KEYS == OBJECTIVES and NETWORK_KEYS == PAPER_KEYS + ("crown-box",) == PAPER_KEYS + EXTRA_KEYS
    for quick in (False, True):
        specs = networks(quick)
        assert list(specs)[-1] == "crown-box" and set(specs) == set(NETWORK_KEYS)
        crown = specs["crown-box"]
        assert crown.config["objective"] == "crown-box" and "beyond the paper" in crown.name
        assert crown.box_methods == ("lp", "best") and "crown-box" not in PAPER
    quick = networks(quick=True)["crown-box"].train_config(None, "-")
    assert (quick.limit, quick.test_limit, quick.epochs) == (2000, EVAL[True].test_limit, 2)  # like the others
    assert networks(quick=True)["crown-box"].packaged is None  # two epochs are not the packaged recipe


def test_crown_box_trains_by_the_packaged_recipe_setting_for_setting():
    """The full plan's CROWN-box-NN is the packaged crown-box-nn's training config (crown-box-nn.json), every field
    (defaults included) but the per-run data folder / out_dir / resume, so a full run retrains that network."""
    recorded = dict(pretrained_info("crown-box-nn")["trained_with"]["config"])
    spec = networks(quick=False)["crown-box"]
    planned = spec.train_config(recorded["data"], recorded["out_dir"]).to_dict()
    assert planned == recorded
    assert spec.packaged == "crown-box-nn"
    assert spec.config["epochs"] == 28 and spec.config["cert_lower_slopes"] == "chord"


def test_adding_crown_box_kept_the_seven_hashes_and_its_own_is_stable():
    """The paper's seven networks keep the hashes of the committed full run (their runs are reused by hash), and
    CROWN-box-NN's hash is the recorded one, the same in every process (no order- or path-dependent input)."""
    if not (STORED_RUN / "networks").is_dir():
        pytest.skip("the committed reproduce run (docs/results/reproduce) is not in this checkout")
    stored = sorted(p.name for p in (STORED_RUN / "networks").iterdir())
    specs = networks(quick=False)
    assert sorted(run_folder(Path("."), specs[key], "any/mnist").name for key in NETWORK_KEYS) == stored
    for key in NETWORK_KEYS:
        record = json.loads((STORED_RUN / "results" / f"{key}.json").read_text())
        assert record["hash"] == config_hash(specs[key], "any/mnist"), key
    assert config_hash(specs["crown-box"], "any/mnist") == CROWN_BOX_HASHES[False]
    assert config_hash(networks(quick=True)["crown-box"], None) == CROWN_BOX_HASHES[True]
    assert config_hash(specs["crown-box"], "any/mnist") not in {config_hash(specs[k], "any/mnist") for k in PAPER_KEYS}


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
    crown = records["crown-box"]["eval"]  # beyond the paper: in the tables as ours, with its box certificates
    assert f"| {records['crown-box']['name']} | **ours**; not in the paper | {_pct(crown['pgd_error'])} |" in table
    assert f"{_pct(crown['best_box_certified_error'])} | 0 |" in report


def test_partial_results_make_a_partial_report(tmp_path, mnist_dir):
    """Networks can be produced one at a time: with only NT-NN done, Fig. 3b / 4a / 4b are simply not drawn yet."""
    reproduce(tmp_path, str(mnist_dir), quick=True, only=["nt"], progress=False)
    assert not (tmp_path / "fig3b.png").exists() and not (tmp_path / "fig4b.png").exists()
    shutil.rmtree(tmp_path / "results")
    with pytest.raises(SdpcertError, match="no network has been evaluated"):
        reproduce(tmp_path, str(mnist_dir), quick=True, only=[], progress=False)


def _crown_box_record(settings: dict) -> dict:
    """An evaluation record of CROWN-box-NN as evaluate.py writes it (numbers made up, distinct from every other)."""
    columns = ("clean", "fgsm", "pgd", "cw", "any_attack")
    ev = {**{f"{c}_error": 0.0101 * (i + 1) for i, c in enumerate(columns)},
          **{f"{m}_certified_error": 1.0 for m in ("sdp", "spectral", "frobenius")}, "lp_certified_error": 0.2871,
          "lp_box_certified_error": 0.1125, "best_box_certified_error": 0.0966, "lp_box_broken": 0,
          "best_box_broken": 0, "eps": 0.1, "n": 10000, "broken": 0}
    return {"key": "crown-box", "name": networks()["crown-box"].name, "hash": CROWN_BOX_HASHES[False],
            "settings": settings, "eval": ev, "eps_curve": [], "box_methods": ["lp", "best"],
            "input_box": list(INPUT_BOX), "trained": {"epochs": 28, "train_seconds": 600.0, "schedule": "recipe"},
            "pair_sdp": {"seconds": 3.6, "max_relative_gap": 9e-7}, "schedule_check": None, "dual_vs_exact": [],
            "packaged_match": {"name": "crown-box-nn", "max_abs_difference": 0.0}, "history": [], "eval_seconds": 60.0}


def test_report_shows_crown_box_as_ours_beside_the_papers_seven(tmp_path):
    """From the committed run's seven records and a CROWN-box-NN record: its row in the table of all networks and in
    Table 1, labelled as not the paper's and with no paper row, its certificates over the box, and the seven
    networks' rows exactly as in the committed report."""
    if not (STORED_RUN / "results").is_dir():
        pytest.skip("the committed reproduce run (docs/results/reproduce) is not in this checkout")
    records = {key: json.loads((STORED_RUN / "results" / f"{key}.json").read_text()) for key in PAPER_KEYS}
    records["crown-box"] = _crown_box_record(records["sdp"]["settings"])
    write_report(records, tmp_path, quick=False, command="sdpcert reproduce", figure_seconds=10.0)
    report, table = (tmp_path / "REPORT.md").read_text(), (tmp_path / "table1.md").read_text()
    name = records["crown-box"]["name"]
    row = (f"| {name} | **ours**; not in the paper | 1.01% | 2.02% | 3.03% | 4.04% | 100.00% | 100.00% | 100.00% "
           "| 28.71% | 0 |")
    assert row in report.splitlines()
    after = report.splitlines()[report.splitlines().index(row) + 1]
    assert not after.startswith("| | paper")  # the paper has no number for it
    stored_rows = [line for line in (STORED_RUN / "REPORT.md").read_text().splitlines() if line.startswith("| ")]
    for key in PAPER_KEYS:
        ours = next(line for line in stored_rows if line.startswith(f"| {records[key]['name']} | **ours** |"))
        assert ours in report.splitlines(), key
    assert "## Beyond the paper" in report and "| 11.25% | 9.66% | 0 |" in report  # LP and best over the box
    assert "docs/results/crown-box-nn" in report
    assert f"| {name} | **ours**; not in the paper | 3.03% | 100.00% | 28.71% |" in table
    assert "LP bound 11.25%, `best` (cascade) 9.66%" in table
    assert re.search(r"\| \| paper \| 15% \| 35% \| 99% \|", table)  # the paper's own rows are still there
    assert "The CROWN-box-NN trained here is bit-identical to the packaged `crown-box-nn`" in report
    # A run adopted from elsewhere (same settings, trained by `sdpcert train`) is said to be so, not matched to itself.
    records["crown-box"]["trained"]["adopted_from"] = "the packaged `crown-box-nn`"
    write_report(records, tmp_path, quick=False, command="sdpcert reproduce", figure_seconds=10.0)
    report = (tmp_path / "REPORT.md").read_text()
    assert "The CROWN-box-NN evaluated here was not trained by this command: it is the packaged `crown-box-nn`." \
        in report and "CROWN-box-NN trained here" not in report
    assert "Beyond the paper, outside that budget: " + name + " 11.0 min" in report


def test_crown_box_evaluated_with_its_box_certificates(tmp_path, mnist_dir, monkeypatch):
    """The evaluation stage on a real certified-trained net (the packaged crown-box-nn's weights stand in for the
    quick training): the common columns, lp and best over the ball intersected with [0, 1], nothing broken."""
    def packaged_weights(out, spec, data, progress=True, log=None):
        folder = run_folder(out, spec, data)
        folder.mkdir(parents=True, exist_ok=True)
        load_pretrained("crown-box-nn").save(folder / MODEL_NAME)
        (folder / LOG_JSON_NAME).write_text(json.dumps({"epochs": []}))
        return {"key": spec.key, "name": spec.name, "hash": config_hash(spec, data), "epochs": 2,
                "train_seconds": 0.0, "reused": False}

    monkeypatch.setattr(pipeline, "train_or_reuse", packaged_weights)
    result = reproduce(tmp_path, str(mnist_dir), quick=True, only=["crown-box"], progress=False)
    record = result["records"]["crown-box"]
    ev = record["eval"]
    assert record["box_methods"] == ["lp", "best"] and record["input_box"] == [0.0, 1.0]
    assert ev["n"] == EVAL[True].test_limit and ev["broken"] == 0
    assert ev["any_attack_error"] <= ev["best_box_certified_error"] <= ev["lp_box_certified_error"]
    assert ev["lp_box_certified_error"] <= ev["lp_certified_error"]
    assert ev["best_box_certified_error"] < 0.3  # a certified-trained net, certified over the box
    report = (tmp_path / "REPORT.md").read_text()
    assert f"| {_pct(ev['lp_box_certified_error'])} | {_pct(ev['best_box_certified_error'])} | 0 |" in report
    assert not (tmp_path / "fig2.png").exists()  # the figures are the paper's networks'


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"
