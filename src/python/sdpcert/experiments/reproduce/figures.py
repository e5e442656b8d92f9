"""Stage 3 of ``sdpcert reproduce``: the paper's figures as PNG (matplotlib) and the numbers behind each as CSV,
all read from the evaluation records of stage 2 (``records``: key -> record of :func:`evaluate.evaluate_network`).

Fig. 2  -- certified error under each upper bound (SDP, spectral, Frobenius; LP added) and the PGD error, per net.
Fig. 3a -- SDP certified error (upper bound) against PGD error (lower bound), per network.
Fig. 3b -- SDP-NN: FGSM, PGD and CW error and the SDP (and LP) certified error against eps.
Fig. 4a -- SDP-NN weighted vs unweighted: PGD and SDP certified error, and the dual certificate per epoch.
Fig. 4b -- SDP-NN: the dual certificate from training against the exact pair SDPs' certificate, per epoch.

The figures are the paper's: they show its seven networks only; networks beyond the paper (CROWN-box-NN) are in the
report's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..error_vs_eps import plot_error_vs_eps, write_csv
from .plan import PAPER_KEYS

__all__ = ["write_figures"]

BOUNDS = (("sdp", "SDP"), ("spectral", "spectral"), ("frobenius", "Frobenius"), ("lp", "LP (Wong-Kolter)"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _bars(ax, labels: Sequence[str], series: dict[str, list[float]], ylabel: str = "error on the test set (%)"):
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + (index - (len(series) - 1) / 2) * width, [100 * v for v in values], width, label=name)
        for bar, value in zip(bars, values):
            ax.annotate(f"{100 * value:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=6)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 125)  # room above 100% for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=min(len(series), 5), frameon=False)


def _present(records: dict) -> list[str]:
    return [key for key in PAPER_KEYS if key in records]  # the paper's networks, in its order


def fig2(records: dict, out: Path) -> list[Path]:
    keys = _present(records)
    rows = [{"network": records[k]["name"], "pgd_error": records[k]["eval"]["pgd_error"],
             **{f"{m}_certified_error": records[k]["eval"][f"{m}_certified_error"] for m, _ in BOUNDS}} for k in keys]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    series = {f"{label} bound": [r[f"{m}_certified_error"] for r in rows] for m, label in BOUNDS}
    series["PGD attack (lower bound)"] = [r["pgd_error"] for r in rows]
    _bars(ax, [r["network"] for r in rows], series)
    ax.set_title(f"Fig. 2: upper bounds on the adversarial error, eps = {records[keys[0]]['eval']['eps']:g} "
                 f"(n = {records[keys[0]]['eval']['n']})", fontsize=10)
    return [write_csv(rows, out / "fig2.csv"), _save(fig, out / "fig2.png")]


def fig3a(records: dict, out: Path) -> list[Path]:
    keys = _present(records)
    rows = [{"network": records[k]["name"], "sdp_certified_error": records[k]["eval"]["sdp_certified_error"],
             "pgd_error": records[k]["eval"]["pgd_error"]} for k in keys]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    _bars(ax, [r["network"] for r in rows], {"SDP certified error (upper bound)": [r["sdp_certified_error"] for r in rows],
                                             "PGD error (lower bound)": [r["pgd_error"] for r in rows]})
    ax.set_title("Fig. 3a: upper (SDP) and lower (PGD) bound on the adversarial error", fontsize=10)
    return [write_csv(rows, out / "fig3a.csv"), _save(fig, out / "fig3a.png")]


def fig3b(records: dict, out: Path) -> list[Path]:
    rows = records["sdp"]["eps_curve"]
    plot_error_vs_eps(rows, out / "fig3b.png", title=f"Fig. 3b: SDP-NN against three attacks (n = {rows[0]['n']})",
                      methods=("sdp", "lp"))
    return [write_csv(rows, out / "fig3b.csv"), out / "fig3b.png"]


def fig4a(records: dict, out: Path) -> list[Path]:
    pair = [k for k in ("sdp", "sdp-weighted") if k in records]
    rows = [{"network": records[k]["name"], "pgd_error": records[k]["eval"]["pgd_error"],
             "sdp_certified_error": records[k]["eval"]["sdp_certified_error"],
             "clean_error": records[k]["eval"]["clean_error"]} for k in pair]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _bars(left, [r["network"] for r in rows], {"PGD error": [r["pgd_error"] for r in rows],
                                               "SDP certified error": [r["sdp_certified_error"] for r in rows]})
    left.set_title("final networks", fontsize=9)
    curves = []
    for k in pair:
        hist = records[k]["history"]
        right.plot([h["epoch"] for h in hist], [100 * h["dual_certified_error"] for h in hist], label=records[k]["name"])
        curves += [{"network": records[k]["name"], "epoch": h["epoch"], "dual_certified_error": h["dual_certified_error"],
                    "clean_error": h["clean_error"]} for h in hist]
    right.set_xlabel("epoch")
    right.set_ylabel("dual certificate: certified error (%)")
    right.set_ylim(0, 101)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    right.set_title("during training (test set, proven dual bound)", fontsize=9)
    fig.suptitle("Fig. 4a: weighted vs unweighted regularization", fontsize=10)
    return [write_csv(rows, out / "fig4a.csv"), write_csv(curves, out / "fig4a_training.csv"),
            _save(fig, out / "fig4a.png")]


def fig4b(records: dict, out: Path) -> list[Path]:
    rows = records["sdp"]["dual_vs_exact"]
    hist = records["sdp"]["history"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["epoch"] for h in hist], [100 * h["dual_certified_error"] for h in hist], color="0.7", linewidth=0.8,
            label="dual certificate, every epoch")
    ax.plot([r["epoch"] for r in rows], [100 * r["dual_certified_error"] for r in rows], marker="o",
            label="SDP dual (from training)")
    ax.plot([r["epoch"] for r in rows], [100 * r["exact_sdp_certified_error"] for r in rows], marker="s",
            linestyle="--", label="exact pair SDPs")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"certified error at eps {rows[0]['eps']:g} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Fig. 4b: SDP-NN, dual certificate vs exact SDP", fontsize=10)
    return [write_csv(rows, out / "fig4b.csv"), _save(fig, out / "fig4b.png")]


def write_figures(records: dict, out: Path) -> list[Path]:
    """Every figure whose networks are in ``records``; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if _present(records):
        written += fig2(records, out) + fig3a(records, out)
    if "sdp" in records:
        written += fig3b(records, out) + fig4b(records, out)
    if "sdp" in records and "sdp-weighted" in records:
        written += fig4a(records, out)
    return written
