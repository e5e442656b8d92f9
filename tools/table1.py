"""Table 1 of the paper from measured evaluation records: PGD error, SDP bound and LP bound (certified errors at
eps = 0.1 on the 10,000 MNIST test images) for SDP-NN and LP-NN, next to the paper's numbers (labelled as such).

    python tools/table1.py [--sdp-nn src/python/sdpcert/_data/models/sdp-nn.json]
                           [--lp-nn docs/results/lpnn/lp-nn.json] [--out docs/results/table1.md]

The records are written by tools/package_model.py; nothing here is typed in except the paper's own numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAPER = {"SDP-NN": {"pgd": 0.15, "sdp": 0.35, "lp": 0.99}, "LP-NN": {"pgd": 0.22, "sdp": 0.93, "lp": 0.26}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdp-nn", type=Path, default=REPO / "src/python/sdpcert/_data/models/sdp-nn.json")
    parser.add_argument("--lp-nn", type=Path, default=REPO / "docs/results/lpnn/lp-nn.json")
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/table1.md")
    args = parser.parse_args(argv)
    records = {"SDP-NN": json.loads(args.sdp_nn.read_text()), "LP-NN": json.loads(args.lp_nn.read_text())}
    lines = ["# Table 1: SDP-NN against LP-NN (MNIST test set, eps = 0.1)", "",
             "Written by `python tools/table1.py` from the evaluation records of `tools/package_model.py`. "
             "Ours / the paper's (Raghunathan et al. 2018, Table 1).", "",
             "| network | clean error | PGD error | SDP bound (certified error) | LP bound (certified error) |",
             "|---|---|---|---|---|"]
    for name, rec in records.items():
        ev = rec["evaluation"]
        paper = PAPER[name]
        lines.append(f"| {name} | {100 * ev['clean_error']:.2f}% | {100 * ev['attack_errors']['pgd']:.2f}% / "
                     f"{100 * paper['pgd']:.0f}% | {100 * ev['certified_error']['sdp']:.2f}% / {100 * paper['sdp']:.0f}% "
                     f"| {100 * ev['certified_error']['lp']:.2f}% / {100 * paper['lp']:.0f}% |")
    lines += ["", "PGD: 40 steps, 5 restarts, cross-entropy. Certified points broken by FGSM, PGD or CW: "
              + ", ".join(f"{name} {sum(rec['evaluation']['certified_points_broken'].values())}"
                          for name, rec in records.items()) + ".",
              "", "Trained with: " + "; ".join(f"{name}: `{rec['trained_with']['command']}`"
                                               for name, rec in records.items()), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
