"""Stage 4 of ``sdpcert reproduce``: ``REPORT.md`` and ``table1.md``, every number read from the evaluation records
(stage 2) and the training records (stage 1). Only the paper's own numbers come from ``plan.PAPER``, and they are
labelled as the paper's wherever they appear. Networks beyond the paper (``plan.EXTRA_KEYS``: CROWN-box-NN) get the
same row as the paper's, labelled as not in the paper and with no paper row, and a section of their own for the
per-example certificates over the pixel box; the figures and the time budget are the paper's seven.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ... import __version__
from .plan import NETWORK_KEYS, PAPER, PAPER_NOTES, is_paper_network

__all__ = ["write_report", "table1_lines"]

_COLUMNS = (("clean_error", "clean"), ("fgsm_error", "FGSM"), ("pgd_error", "PGD"), ("cw_error", "CW-ℓ∞"),
            ("sdp_certified_error", "SDP bound"), ("spectral_certified_error", "spectral bound"),
            ("frobenius_certified_error", "Frobenius bound"), ("lp_certified_error", "LP bound"))


def _pct(value: Optional[float], digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _whose(key: str) -> str:
    """The label column: every row is measured here; those of networks beyond the paper say the paper has none."""
    return "**ours**" if is_paper_network(key) else "**ours**; not in the paper"


#: How the box columns name a per-example method.
_BOX_LABELS = {"lp": "LP bound", "lp-opt": "LP bound, optimised slopes", "interval": "interval bound",
               "sdp-example": "per-example SDP", "best": "`best` (cascade)"}


def table1_lines(records: dict) -> list[str]:
    """Table 1 of the paper (SDP-NN vs LP-NN): ours, then the paper's, for PGD error, SDP bound and LP bound; then
    the networks beyond the paper (ours only), with a note on their certificates over the pixel box."""
    lines = ["| network | | PGD error | SDP bound | LP bound |", "|---|---|---|---|---|"]
    extra = [key for key in NETWORK_KEYS if key in records and not is_paper_network(key)]
    for key in [k for k in ("sdp", "lp") if k in records] + extra:
        ev = records[key]["eval"]
        lines.append(f"| {records[key]['name']} | {_whose(key)} | {_pct(ev['pgd_error'])} | "
                     f"{_pct(ev['sdp_certified_error'])} | {_pct(ev['lp_certified_error'])} |")
        if key in PAPER:
            paper = PAPER[key]
            lines.append(f"| | paper | {_pct(paper.get('pgd_error'), 0)} | {_pct(paper.get('sdp_certified_error'), 0)} "
                         f"| {_pct(paper.get('lp_certified_error'), 0)} |")
    notes = [_box_note(records[key]) for key in extra if _box_methods(records[key])]
    return lines + ([""] + notes if notes else [])


def _box(record: dict) -> str:
    lo, hi = record["input_box"]
    return f"[{lo:g}, {hi:g}]"


def _box_methods(record: dict) -> list[str]:
    return list(record.get("box_methods") or [])


def _box_note(record: dict) -> str:
    """One sentence: a network's per-example certificates over the ball intersected with the input box."""
    ev = record["eval"]
    found = ", ".join(f"{_BOX_LABELS.get(m, m)} {_pct(ev[f'{m}_box_certified_error'])}" for m in _box_methods(record))
    return (f"{record['name']}: the SDP and LP bounds in this table prove the whole ball, as for the paper's "
            f"networks; over the ball intersected with the pixel box {_box(record)} (where the attacks search "
            f"too) its certified error is: {found}.")


def _all_networks(records: dict, keys: list[str], paper_rows: bool = True) -> list[str]:
    lines = ["| network | | " + " | ".join(label for _, label in _COLUMNS) + " | certified points broken |",
             "|---|---|" + "---|" * len(_COLUMNS) + "---|"]
    for key in keys:
        ev = records[key]["eval"]
        lines.append(f"| {records[key]['name']} | {_whose(key)} | " + " | ".join(_pct(ev[c]) for c, _ in _COLUMNS)
                     + f" | {ev['broken']} |")
        if paper_rows and key in PAPER:
            lines.append("| | paper | " + " | ".join(_pct(PAPER[key].get(c), 1) for c, _ in _COLUMNS) + " | |")
    return lines


def _differences(records: dict) -> list[str]:
    lines = []
    for key, paper in PAPER.items():
        if key not in records:
            continue
        ev = records[key]["eval"]
        parts = [f"{dict(_COLUMNS)[column]} {_pct(ev[column])} vs the paper's "
                 f"{_pct(value, 1)} ({100 * (ev[column] - value):+.1f} points)" for column, value in paper.items()]
        lines.append(f"- {records[key]['name']}: " + "; ".join(parts) + f". (Paper: {PAPER_NOTES[key]}.)")
    return lines


def _tightness(records: dict, keys: list[str]) -> str:
    """Which bound is tightest, counted from the measurements (the paper: SDP beats spectral and Frobenius)."""
    sdp_and_simpler = [(records[k]["name"], records[k]["eval"]["sdp_certified_error"],
                        min(records[k]["eval"]["spectral_certified_error"],
                            records[k]["eval"]["frobenius_certified_error"])) for k in keys]
    tighter = [name for name, sdp, simpler in sdp_and_simpler if sdp <= simpler]
    strictly = [name for name, sdp, simpler in sdp_and_simpler if sdp < simpler]
    return (f"The SDP bound is at least as tight as both the spectral and the Frobenius bound on {len(tighter)} of "
            f"{len(keys)} networks and strictly tighter on {len(strictly)} ({', '.join(strictly) or 'none'}).")


def _seconds(record: dict) -> float:
    return record["trained"]["train_seconds"] + record["eval_seconds"]


def _timing(records: dict, keys: list[str], figure_seconds: float, quick: bool) -> list[str]:
    """Per network, the schedule and the time spent; the budget is the paper's reproduction's (its seven networks
    and the figures), and the networks beyond the paper are counted beside it."""
    lines = ["| network | epochs | schedule | training | evaluation |", "|---|---|---|---|---|"]
    for key in keys:
        rec = records[key]
        tr = rec["trained"]
        lines.append(f"| {rec['name']} | {tr['epochs']} | {tr.get('schedule', '')} | {_minutes(tr['train_seconds'])} | "
                     f"{_minutes(rec['eval_seconds'])} |")
    paper = [k for k in keys if is_paper_network(k)]
    extra = [k for k in keys if not is_paper_network(k)]
    total = figure_seconds + sum(_seconds(records[k]) for k in paper)
    budget = (10 if quick else 90) * 60
    summary = []
    if paper:
        summary.append(f"Total: **{_minutes(total)}** of computation for the paper's networks (training as logged per "
                       f"epoch, evaluation, figures {figure_seconds:.0f} s), summed over the stages whatever session "
                       f"ran them; {'within' if total <= budget else 'over'} the {budget // 60}-minute budget of a "
                       f"{'--quick' if quick else 'full'} run on a 2-core machine.")
    if extra:
        summary.append(("Beyond the paper, outside that budget: " if paper else "Beyond the paper: ") + "; ".join(
            f"{records[k]['name']} {_minutes(_seconds(records[k]))}" for k in extra) + ".")
    return lines + ["", " ".join(summary)]


def _schedule_checks(records: dict, keys: list[str]) -> list[str]:
    lines = ["| network | half-way epoch | PGD error there | PGD error, final | clean, half-way | clean, final | images |",
             "|---|---|---|---|---|---|---|"]
    for key in keys:
        check = records[key].get("schedule_check")
        if check:
            lines.append(f"| {records[key]['name']} | {check['epoch_half']} of {check['epochs']} | "
                         f"{_pct(check['pgd_error_half'])} | {_pct(check['pgd_error_final'])} | "
                         f"{_pct(check['clean_error_half'])} | {_pct(check['clean_error_final'])} | {check['n']} |")
    return lines


def _eps_curve(rows: list[dict]) -> list[str]:
    lines = ["| eps | clean | FGSM | PGD | CW-ℓ∞ | SDP certified | LP certified | broken |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['eps']:g} | {_pct(r['clean_error'])} | {_pct(r['fgsm_error'])} | {_pct(r['pgd_error'])} | "
                     f"{_pct(r['cw_error'])} | {_pct(r['sdp_certified_error'])} | {_pct(r['lp_certified_error'])} | "
                     f"{r['broken']} |")
    return lines


def _dual_vs_exact(rows: list[dict]) -> list[str]:
    lines = ["| epoch | dual certificate (training) | exact pair SDPs | difference | mean S_ij, dual | mean S_ij, exact |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        dual = r["dual_certified_error"]
        diff = "" if dual is None else f"{100 * (dual - r['exact_sdp_certified_error']):+.2f} points"
        lines.append(f"| {r['epoch']} | {_pct(dual)} | {_pct(r['exact_sdp_certified_error'])} | {diff} | "
                     f"{r['dual_S_mean']:.2f} | {r['exact_S_mean']:.2f} |")
    return lines


def _beyond_the_paper(records: dict, keys: list[str]) -> list[str]:
    """The section of the networks beyond the paper: what they are, and their per-example certificates over the
    ball intersected with the pixel box next to the whole-ball LP bound and the attacks."""
    extra = [k for k in keys if not is_paper_network(k)]
    if not extra:
        return []
    lines = ["", "## Beyond the paper: certified training over the pixel box", "",
             "Not one of the paper's networks, and the paper has no number for it: CROWN-box-NN is trained by "
             "`sdpcert train --objective crown-box` (the robust cross-entropy of linear-relaxation bounds over the "
             "ℓ∞ ball intersected with the pixel box [0, 1]), with the recipe of the packaged `crown-box-nn` "
             "(docs/results/crown-box-nn, which also has its certificates at other radii). The pair SDP, spectral "
             "and Frobenius bounds prove the whole ball from the weights alone, and a net trained for per-example "
             "bounds need not make them small; per example, over the ball intersected with the box, where the "
             "attacks search too:", ""]
    methods = list(dict.fromkeys(m for k in extra for m in _box_methods(records[k])))
    lines += ["| network | clean | any attack (lower bound) | LP bound, whole ball | "
              + " | ".join(f"{_BOX_LABELS.get(m, m)}, ball ∩ box" for m in methods) + " | certified points broken |",
              "|---|---|---|---|" + "---|" * len(methods) + "---|"]
    for key in extra:
        ev = records[key]["eval"]
        lines.append(f"| {records[key]['name']} | {_pct(ev['clean_error'])} | {_pct(ev['any_attack_error'])} | "
                     f"{_pct(ev['lp_certified_error'])} | "
                     + " | ".join(_pct(ev.get(f"{m}_box_certified_error")) for m in methods) + f" | {ev['broken']} |")
    if "best" not in methods:
        lines += ["", "`best` was not measured in this run; see docs/results/crown-box-nn for it."]
    return lines


def _packaged_matches(records: dict, keys: list[str]) -> list[str]:
    """Per network with a packaged twin (trained earlier from the same settings and seed): how close the weights are.
    A run adopted rather than trained here (``adopted_from`` in its training record) says so instead: comparing it
    with its own source would prove nothing."""
    lines = []
    for key in keys:
        short = records[key]["name"].split(" (")[0]
        adopted = records[key]["trained"].get("adopted_from")
        if adopted:
            lines += ["", f"The {short} evaluated here was not trained by this command: it is {adopted}."]
            continue
        match = records[key].get("packaged_match")
        if not match or match.get("max_abs_difference") is None:
            continue
        same = ("bit-identical to" if match["max_abs_difference"] == 0 else
                f"within {match['max_abs_difference']:.3g} (largest weight difference) of")
        lines += ["", f"The {short} trained here is {same} the packaged `{match['name']}` model, trained earlier from "
                      "the same settings and seed (`sdpcert.model.load_pretrained`)."]
    return lines


def write_report(records: dict, out: Path, quick: bool, command: str, figure_seconds: float) -> list[Path]:
    """Write ``REPORT.md`` and ``table1.md`` into ``out``; returns their paths."""
    out = Path(out)
    keys = [k for k in NETWORK_KEYS if k in records]
    paper_keys = [k for k in keys if is_paper_network(k)]  # those of the figures
    any_rec = records[keys[0]]
    settings = any_rec["settings"]
    n = any_rec["eval"]["n"]
    broken = sum(row["broken"] for k in keys for row in (records[k]["eps_curve"] or [records[k]["eval"]]))
    lines = ["# Reproducing Raghunathan, Steinhardt & Liang (ICLR 2018), §6", "",
             f"Written by `{command}` (sdpcert {__version__}). Every number is measured by the code from MNIST, except "
             "rows and sentences marked **paper**, which quote the paper.", ""]
    if len(paper_keys) < len(keys):
        lines += [", ".join(records[k]["name"] for k in keys if k not in paper_keys) + " is not one of the paper's "
                  "networks (see *Beyond the paper*); its rows are ours alone.", ""]
    if quick:
        lines += ["**Quick mode**: a few epochs on 2,000 training images, evaluated on the first "
                  f"{n} test images with cheaper attacks. It checks the pipeline; its numbers are not the paper's "
                  "experiment.", ""]
    lines += [f"Test images: {n}; radius eps = {settings['eps']:g} (ℓ∞, pixels in [0, 1]). Lower bounds: FGSM, PGD "
              f"({settings['pgd_steps']} steps, random start, {settings['pgd_restarts']} restart(s), cross-entropy), CW-ℓ∞ "
              f"({settings['cw_steps']} steps). Upper bounds (certified error = fraction of test images not proven "
              "correct): exact pair SDPs (float64, rigorous), spectral and Frobenius bounds (paper §5), and the LP "
              "bound of Wong & Kolter (2018).", "",
              f"**Soundness:** {broken} certified points broken by any attack, over all networks, radii and bounds.", "",
              "## All networks", ""] + _all_networks(records, keys)
    lines += ["", "Differences from the paper:", ""] + _differences(records)
    lines += _packaged_matches(records, keys)
    lines += _beyond_the_paper(records, keys)
    lines += ["", "## Table 1: SDP-NN against LP-NN", ""] + table1_lines(records)
    if paper_keys:
        lines += ["", "## Figure 2: upper bounds for every network", "", "![Fig. 2](fig2.png)", "",
                  "Numbers: `fig2.csv`. " + _tightness(records, paper_keys), "",
                  "## Figure 3a: SDP upper bound against PGD lower bound", "", "![Fig. 3a](fig3a.png)", ""]
    if "sdp" in records:
        lines += ["## Figure 3b: SDP-NN against three attacks, over eps", "", "![Fig. 3b](fig3b.png)", ""]
        lines += _eps_curve(records["sdp"]["eps_curve"])
    if "sdp" in records and "sdp-weighted" in records:
        lines += ["", "## Figure 4a: weighted vs unweighted pair regularization", "", "![Fig. 4a](fig4a.png)", ""]
        lines += _all_networks(records, ["sdp", "sdp-weighted"], paper_rows=False)
    if "sdp" in records:
        rows = records["sdp"]["dual_vs_exact"]
        lines += ["", "## Figure 4b: dual certificate from training against the exact SDP", "", "![Fig. 4b](fig4b.png)",
                  ""] + _dual_vs_exact(rows)
        gaps = [r["dual_certified_error"] - r["exact_sdp_certified_error"] for r in rows
                if r["dual_certified_error"] is not None]
        if gaps:
            where = ("never below the exact one, as it must not be: the training-time c_ij are one feasible point of "
                     "the dual that the exact solver minimizes" if min(gaps) >= 0 else
                     "below the exact one at some snapshot (possible only within the exact solver's relative gap)")
            lines += ["", f"Over {len(gaps)} snapshots the dual certificate is {where}; difference from "
                          f"{100 * min(gaps):+.2f} to {100 * max(gaps):+.2f} points, mean {100 * sum(gaps) / len(gaps):+.2f}, "
                          f"and {100 * gaps[-1]:+.2f} points at the last snapshot (epoch {rows[-1]['epoch']})."]
    lines += ["", "## Schedules and time", ""] + _timing(records, keys, figure_seconds, quick)
    lines += ["", "Schedule check: PGD error of the half-way snapshot against the final network on the same test "
                  "images. Where they agree, training longer would not change the robust error.", ""]
    lines += _schedule_checks(records, keys)
    moved = [f"{records[k]['name']} ({100 * (c['pgd_error_final'] - c['pgd_error_half']):+.1f} points)"
             for k in keys if (c := records[k].get("schedule_check"))
             and abs(c["pgd_error_final"] - c["pgd_error_half"]) > 0.01]
    lines += ["", "PGD error moved by more than 1 point in the second half of training for: "
              + (", ".join(moved) if moved else "none") + "."]
    lines += ["", "Exact pair SDPs (45 per network): " + "; ".join(
        f"{records[k]['name']} {records[k]['pair_sdp']['seconds']:.1f} s (max relative gap "
        f"{records[k]['pair_sdp']['max_relative_gap']:.1e})" for k in keys) + ".", ""]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    table = out / "table1.md"
    table.write_text("\n".join(["# Table 1 (eps = 0.1): ours and the paper's", "", f"From `{command}`; see REPORT.md.",
                                ""] + table1_lines(records) + [""]))
    return [report, table]
