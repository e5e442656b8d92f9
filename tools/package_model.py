"""Package a trained network as sdpcert package data, after measuring it and checking its certificates.

    python tools/package_model.py RUN_DIR --name sdp-nn --data ../shared/data/mnist [--eps 0.1]
    python tools/package_model.py RUN_DIR --name crown-box-nn --data ... --box-methods lp,best [--input-domain 0,1]

RUN_DIR is an ``sdpcert train --out`` folder (model.npz, log.json). On the full MNIST test set (10,000 images) at
``--eps`` it measures the clean error, FGSM / PGD / CW errors (PGD: 40 steps, 5 restarts as in the paper; CW: 100
steps) and the certified error of the exact pair SDPs (Certifier) and of the LP bound, both over the whole ball, and
counts the certified points that any attack breaks. With ``--box-methods`` it also certifies with those per-example
methods (e.g. lp, lp-opt, best) over the ball intersected with ``--input-domain`` (what a net trained over the
pixel box, ``--objective crown-box``, is certified on), recorded under ``evaluation.box_certificates``; records
written without them simply lack that key. It refuses to package a model with a broken certificate. Then it writes

    src/python/sdpcert/_data/models/NAME.npz   the weights, float32 (exact: the net was trained in float32)
    src/python/sdpcert/_data/models/NAME.json  how it was trained (command, config, epochs, commit) and every number
                                               measured here

so that ``sdpcert.model.pretrained_info(NAME)`` and the docs quote numbers produced by code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# The command line's own argument types: method names checked against the method table, LO,HI with a clear error.
from sdpcert.cli.parser import _input_domain, _method_list

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def box_certificates(row: dict, methods: tuple, domain: tuple) -> dict:
    """The per-example certificates over the ball intersected with ``domain`` from an ``error_vs_eps`` row: certified
    error, broken points and seconds per method, under a key of their own so that the whole-ball ``certified_error``
    keeps its meaning (and older records, which lack this key, read as before)."""
    return {"input_domain": [float(domain[0]), float(domain[1])],
            "certified_error": {m: row[f"{m}_box_certified_error"] for m in methods},
            "certified_points_broken": {m: row[f"{m}_box_broken"] for m in methods},
            "seconds": {m: row[f"{m}_box_seconds"] for m in methods}}


def main(argv=None) -> int:
    import torch

    import sdpcert
    from sdpcert import Certifier, TwoLayerNet, load_mnist
    from sdpcert.experiments import ATTACK_OPTIONS, error_vs_eps

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--restarts", type=int, default=5, help="PGD restarts (paper: 5)")
    parser.add_argument("--limit", type=int, default=None, help="first N test images only (quick checks)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "src/python/sdpcert/_data/models")
    parser.add_argument("--command", default=None, help="the training command, as run (for the record)")
    parser.add_argument("--json-only", action="store_true",
                        help="write only NAME.json (an evaluation record, e.g. under docs/results), no weights")
    parser.add_argument("--box-methods", type=_method_list, default=(),
                        help="per-example methods also certified over the ball intersected with --input-domain, "
                             "e.g. lp,best (default: none)")
    parser.add_argument("--input-domain", type=_input_domain, default=(0.0, 1.0),
                        help="LO,HI: the box of --box-methods (default 0,1: pixels)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    net = TwoLayerNet.load(args.run_dir / "model.npz")
    log = json.loads((args.run_dir / "log.json").read_text())
    X, y = load_mnist("test", folder=args.data, limit=args.limit)
    t0 = time.perf_counter()
    certifier = Certifier(net)
    pairs = certifier.pair_bounds()
    t_pairs = time.perf_counter() - t0
    methods = ("sdp", "lp")
    box_certifier = Certifier(net, input_domain=args.input_domain) if args.box_methods else None
    row = error_vs_eps(net, X, y, [args.eps], methods=methods, certifier=certifier,
                       attack_options={"pgd": {"restarts": args.restarts}}, box_methods=args.box_methods,
                       box_certifier=box_certifier)[0]
    attacks = ("fgsm", "pgd", "cw")
    evaluation = {
        "eps": args.eps, "n": row["n"], "data": "MNIST test" + (f", first {args.limit}" if args.limit else ""),
        "clean_error": row["clean_error"],
        "attack_errors": {a: row[f"{a}_error"] for a in attacks}, "any_attack_error": row["any_attack_error"],
        "attacks": {"fgsm": {}, "pgd": {**ATTACK_OPTIONS["pgd"], "restarts": args.restarts, "loss": "ce"},
                    "cw": {**ATTACK_OPTIONS["cw"], "loss": "margin"}},
        "certified_error": {m: row[f"{m}_certified_error"] for m in methods},
        "certified_points_broken": {m: row[f"{m}_broken"] for m in methods},
        "pair_sdp": {"max_relative_gap": float(np.nanmax(pairs.relative_gap[np.triu_indices(net.k, 1)])),
                     "seconds": t_pairs},
        "attack_seconds": row["attack_seconds"],
    }
    broken = dict(evaluation["certified_points_broken"])
    if args.box_methods:
        box = evaluation["box_certificates"] = box_certificates(row, args.box_methods, args.input_domain)
        broken.update({f"{m} over the box": n for m, n in box["certified_points_broken"].items()})
    print(json.dumps(evaluation, indent=2))
    if any(broken.values()):
        print(f"REFUSED: certified points broken by an attack: {broken}", file=sys.stderr)
        return 3
    config = dict(log["config"])
    # Only names, no machine paths, in files that ship: the data folder and the run folder by their last parts.
    for key in ("data", "out_dir"):
        if config.get(key):
            config[key] = Path(config[key]).name
    epochs = log["epochs"]
    info = {
        "name": args.name,
        "architecture": f"{net.d}-{net.m}-{net.k} {net.activation}",
        "fingerprint": net.fingerprint(),
        "trained_with": {"command": args.command, "config": config, "epochs_run": len(epochs),
                         "final_epoch": {k: v for k, v in epochs[-1].items() if not isinstance(v, (list, dict))},
                         "train_seconds_total": float(sum(e["seconds"] for e in epochs))},
        "evaluation": evaluation,
        "packaged": {"sdpcert_version": sdpcert.__version__, "commit": git_commit(),
                     "date": datetime.date.today().isoformat()},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    written = args.out_dir / f"{args.name}.json"
    if not args.json_only:
        net.save(args.out_dir / f"{args.name}.npz", compact=True)
        again = TwoLayerNet.load(args.out_dir / f"{args.name}.npz")
        assert again.fingerprint() == net.fingerprint(), "the packaged weights differ from the trained ones"
        written = args.out_dir / f"{args.name}.npz"
    try:
        written = written.resolve().relative_to(REPO_ROOT)
    except ValueError:
        pass
    print(f"wrote {written}" + ("" if args.json_only else " and .json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
