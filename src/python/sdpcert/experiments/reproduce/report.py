"""Stage 4 of ``sdpcert reproduce``: ``REPORT.md`` and ``table1.md``, every number read from the evaluation records
(stage 2) and the training records (stage 1). Only the paper's own numbers come from ``plan.PAPER``, and they are
labelled as the paper's wherever they appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ... import __version__
from .plan import NETWORK_KEYS, PAPER, PAPER_NOTES

__all__ = ["write_report", "table1_lines"]

_COLUMNS = (("clean_error", "clean"), ("fgsm_error", "FGSM"), ("pgd_error", "PGD"), ("cw_error", "CW-ℓ∞"),
            ("sdp_certified_error", "SDP bound"), ("spectral_certified_error", "spectral bound"),
            ("frobenius_certified_error", "Frobenius bound"), ("lp_certified_error", "LP bound"))


def _pct(value: Optional[float], digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def table1_lines(records: dict) -> list[str]:
    """Table 1 of the paper (SDP-NN vs LP-NN): ours, then the paper's, for PGD error, SDP bound and LP bound."""
    lines = ["| network | | PGD error | SDP bound | LP bound |", "|---|---|---|---|---|"]
    for key in ("sdp", "lp"):
        if key not in records:
            continue
        ev, paper = records[key]["eval"], PAPER[key]
        lines.append(f"| {records[key]['name']} | **ours** | {_pct(ev['pgd_error'])} | {_pct(ev['sdp_certified_error'])} "
                     f"| {_pct(ev['lp_certified_error'])} |")
        lines.append(f"| | paper | {_pct(paper.get('pgd_error'), 0)} | {_pct(paper.get('sdp_certified_error'), 0)} "
                     f"| {_pct(paper.get('lp_certified_error'), 0)} |")
    return lines


def _all_networks(records: dict, keys: list[str], paper_rows: bool = True) -> list[str]:
    lines = ["| network | | " + " | ".join(label for _, label in _COLUMNS) + " | certified points broken |",
             "|---|---|" + "---|" * len(_COLUMNS) + "---|"]
    for key in keys:
        ev = records[key]["eval"]
        lines.append(f"| {records[key]['name']} | **ours** | " + " | ".join(_pct(ev[c]) for c, _ in _COLUMNS)
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


def _timing(records: dict, keys: list[str], figure_seconds: float, quick: bool) -> list[str]:
    lines = ["| network | epochs | schedule | training | evaluation |", "|---|---|---|---|---|"]
    total = figure_seconds
    for key in keys:
        rec = records[key]
        tr = rec["trained"]
        total += tr["train_seconds"] + rec["eval_seconds"]
        lines.append(f"| {rec['name']} | {tr['epochs']} | {tr.get('schedule', '')} | {_minutes(tr['train_seconds'])} | "
                     f"{_minutes(rec['eval_seconds'])} |")
    budget = (10 if quick else 90) * 60
    lines += ["", f"Total: **{_minutes(total)}** of computation (training as logged per epoch, evaluation, figures "
                  f"{figure_seconds:.0f} s), summed over the stages whatever session ran them; "
                  f"{'within' if total <= budget else 'over'} the {budget // 60}-minute budget of a "
                  f"{'--quick' if quick else 'full'} run on a 2-core machine."]
    return lines


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


def write_report(records: dict, out: Path, quick: bool, command: str, figure_seconds: float) -> list[Path]:
    """Write ``REPORT.md`` and ``table1.md`` into ``out``; returns their paths."""
    out = Path(out)
    keys = [k for k in NETWORK_KEYS if k in records]
    any_rec = records[keys[0]]
    settings = any_rec["settings"]
    n = any_rec["eval"]["n"]
    broken = sum(row["broken"] for k in keys for row in (records[k]["eps_curve"] or [records[k]["eval"]]))
    lines = ["# Reproducing Raghunathan, Steinhardt & Liang (ICLR 2018), §6", "",
             f"Written by `{command}` (sdpcert {__version__}). Every number is measured by the code from MNIST, except "
             "rows and sentences marked **paper**, which quote the paper.", ""]
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
    match = records.get("sdp", {}).get("packaged_match")
    if match and match.get("max_abs_difference") is not None:
        same = ("bit-identical to" if match["max_abs_difference"] == 0 else
                f"within {match['max_abs_difference']:.3g} (largest weight difference) of")
        lines += ["", f"The SDP-NN trained here is {same} the packaged `{match['name']}` model, trained earlier from "
                      "the same settings and seed (`sdpcert.model.load_pretrained`)."]
    lines += ["", "## Table 1: SDP-NN against LP-NN", ""] + table1_lines(records)
    lines += ["", "## Figure 2: upper bounds for every network", "", "![Fig. 2](fig2.png)", "",
              "Numbers: `fig2.csv`. " + _tightness(records, keys), "",
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
