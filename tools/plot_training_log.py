"""Plot an ``sdpcert train`` log: clean test error and the per-epoch certificate (the SDP dual certificate or the
LP certificate), with the learning rate drops marked; optional horizontal lines for exact results.

    python tools/plot_training_log.py RUN_DIR/log.json OUT.png [--exact-sdp 0.3742] [--title "..."]
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("out")
    parser.add_argument("--exact-sdp", type=float, default=None,
                        help="certified error of the exact pair SDPs on the final model (a dashed line)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    doc = json.load(open(args.log))
    rows = doc["epochs"]
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [100 * r["clean_error"] for r in rows], label="clean test error")
    if "dual_certified_error" in rows[0]:
        ax.plot(epochs, [100 * r["dual_certified_error"] for r in rows],
                label=f"dual certificate (proven, from the training c), eps {rows[0]['eps_train']:g}")
    if "lp_certified_error" in rows[0]:
        ax.plot(epochs, [100 * r["lp_certified_error"] for r in rows], label=f"LP certificate, eps {rows[0]['eps_train']:g}")
    if args.exact_sdp is not None:
        ax.axhline(100 * args.exact_sdp, color="k", linestyle="--", linewidth=1,
                   label="exact pair SDPs, final model")
    for prev, row in zip(rows, rows[1:]):
        if row["lr"] != prev["lr"]:
            ax.axvline(row["epoch"] - 0.5, color="0.8", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("error %")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(args.title or f"{doc['config']['objective']} training, {len(rows)} epochs", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
