"""Command line: ``sdpcert certify MODEL.npz --eps 0.1``, ``sdpcert attack MODEL.npz --eps 0.1``, ``sdpcert demo``
and ``sdpcert train --objective sdp``.

- ``certify``: clean and certified error (SDP, spectral, Frobenius, LP bounds) of a saved model.
- ``attack``: clean error and the error under FGSM / PGD / CW-l_inf attacks (lower bounds on the robust error);
  with ``--check-certificates`` also certifies the same points and checks that no attack broke a certified point.
- ``demo``: train, certify and attack a small net on the packaged MNIST sample.
- ``train``: train with one of the paper's objectives.

Exit codes: 0 success; 2 bad input (a usage error, an ``SdpcertError`` such as a corrupt model or a negative eps, a
missing or unwritable file), reported as one ``error: ...`` line on stderr without a traceback; 3 a soundness check
failed (``demo``, ``attack --check-certificates``, ``reproduce``: a certified point was broken by an attack, an
``UnsoundCertificateError``), also reported as an ``error: ...`` line.

JSON reports (``--json``) are strict JSON: a number that is not finite (e.g. the upper bound of a pair SDP that
could not be proven, +inf) is written as ``null`` and its location is listed under ``"non_finite"``.

Progress bars and notes go to stderr, tables to stdout. The numerical work lives in ``certify.py``, ``attacks.py``
and ``demo.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import NonFiniteError, SdpcertError, ShapeError, UnsoundCertificateError

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_UNSOUND = 3


# ----------------------------------------------------------------------------------------------- parsing helpers
def _float_list(text: str) -> list[float]:
    """'0.01,0.02' -> [0.01, 0.02]; the values are range-checked later by check_eps (one error path)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number; got {text!r}")
    return values


def _method_list(text: str) -> list[str]:
    from .certify import METHODS

    methods = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from {','.join(METHODS)}")
    return list(dict.fromkeys(methods))


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return value


def _pos_int(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer; got 0")
    return value


_SEED_MAX = 2 ** 63 - 1  # torch and numpy both take seeds up to here


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed; got {text!r}") from None
    if not 0 <= value <= _SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, {_SEED_MAX}]; got {text}")
    return value


_JSON_HELP = ("write all numbers to this JSON file (numbers that are not finite, e.g. an unproven pair bound, are "
              "written as null and listed under \"non_finite\")")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .demo import DEFAULT_EPS

    parser = argparse.ArgumentParser(
        prog="sdpcert",
        description="Sound SDP robustness certificates for one-hidden-layer networks "
                    "(Raghunathan, Steinhardt & Liang, ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"sdpcert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cert = sub.add_parser("certify", help="certify a saved model (.npz) on MNIST at an l_inf radius",
                          description="Certify a saved TwoLayerNet (.npz) on MNIST: clean error and certified error "
                                      "of the SDP, spectral, Frobenius and LP (Wong-Kolter) bounds.")
    cert.add_argument("model", help="model file written by TwoLayerNet.save (.npz), or a packaged model's name "
                                    "(sdp-nn: the SDP-NN of the paper's recipe)")
    cert.add_argument("--eps", type=_float_list, required=True,
                      help="l_inf radius, or comma-separated radii (pixels in [0, 1]), e.g. 0.1 or 0.05,0.1")
    cert.add_argument("--data", metavar="DIR", default=None,
                      help="folder with the MNIST IDX files (default: $SDPCERT_MNIST_DIR; if neither is given, "
                           "the packaged 1000-image test sample)")
    cert.add_argument("--split", choices=("train", "test"), default="test", help="MNIST split (default: test)")
    cert.add_argument("--limit", type=_nonneg_int, default=None, help="use only the first N examples (N >= 1)")
    cert.add_argument("--methods", type=_method_list, default=None,
                      help="comma-separated subset of sdp,spectral,frobenius,lp (default: all that apply to the "
                           "model; lp needs a ReLU net)")
    cert.add_argument("--rel-tol", type=float, default=1e-6,
                      help="target relative gap of each pair SDP (default 1e-6; the bound is proven at any tol)")
    cert.add_argument("--json", metavar="OUT", default=None, help=_JSON_HELP)

    att = sub.add_parser("attack", help="attack a saved model (.npz) on MNIST with FGSM / PGD / CW at l_inf radii",
                         description="Attack a saved TwoLayerNet (.npz) on MNIST: clean error and the error after "
                                     "FGSM, PGD and CW-l_inf attacks (lower bounds on the robust error). With "
                                     "--check-certificates, also certify the same points with every bound that "
                                     "applies and check that no attack broke a certified point (exit code 3 if one "
                                     "did).")
    att.add_argument("model", help="model file written by TwoLayerNet.save (.npz), or a packaged model's name "
                                   "(sdp-nn)")
    att.add_argument("--eps", type=_float_list, required=True,
                     help="l_inf radius, or comma-separated radii (pixels in [0, 1]), e.g. 0.1 or 0.05,0.1")
    att.add_argument("--methods", metavar="ATTACKS", default="fgsm,pgd,cw",
                     help="comma-separated subset of fgsm,pgd,cw (default: all three)")
    att.add_argument("--steps", type=int, default=40,
                     help="PGD / CW: sign-gradient steps per restart (default 40; FGSM takes one step of size eps)")
    att.add_argument("--restarts", type=int, default=1, help="PGD / CW: random restarts (default 1)")
    att.add_argument("--step-size", type=float, default=None,
                     help="PGD / CW: step size (default 2.5 eps / steps)")
    att.add_argument("--seed", type=_seed, default=0, help="PGD / CW: seed of the random starts (default 0)")
    att.add_argument("--data", metavar="DIR", default=None,
                     help="folder with the MNIST IDX files (default: $SDPCERT_MNIST_DIR; if neither is given, "
                          "the packaged 1000-image test sample)")
    att.add_argument("--split", choices=("train", "test"), default="test", help="MNIST split (default: test)")
    att.add_argument("--limit", type=_nonneg_int, default=None, help="use only the first N examples (N >= 1)")
    att.add_argument("--check-certificates", action="store_true",
                     help="also certify the points with every method that applies (sdp, spectral, frobenius, lp) "
                          "and count the certified points an attack broke (exit code 3 if any)")
    att.add_argument("--json", metavar="OUT", default=None, help=_JSON_HELP)

    demo = sub.add_parser("demo", help="train a small net on packaged MNIST, certify it and attack it (~1 minute)",
                          description="Quick start, no download: trains a 784-100-10 ReLU net on the packaged MNIST "
                                      "slice, certifies it on 1000 test images and checks every certified point "
                                      "against a PGD attack; then does the same for the packaged SDP-NN at eps 0.1.")
    demo.add_argument("--seconds", type=float, default=60.0,
                      help="training time budget in seconds (default 60; training also stops after --epochs)")
    demo.add_argument("--epochs", type=_pos_int, default=300, help="maximum training epochs (default 300)")
    demo.add_argument("--out", metavar="DIR", default="sdpcert-demo",
                      help="where model.npz and summary.json go (default ./sdpcert-demo)")
    demo.add_argument("--eps", type=_float_list, default=list(DEFAULT_EPS),
                      help=f"comma-separated l_inf radii (default {','.join(map(str, DEFAULT_EPS))})")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    demo.add_argument("--skip-packaged", action="store_true",
                      help="skip part 2 (certifying and attacking the packaged SDP-NN at eps 0.1, ~10 s)")

    from .train import OBJECTIVES

    tr = sub.add_parser("train", help="train NT/Fro/Spe/AT/SDP/LP-NN networks (paper §6) with per-epoch logs",
                        description="Train a 784-m-10 ReLU net with one of the paper's objectives. Every epoch logs "
                                    "the training loss, the clean test error and, for sdp objectives, the dual "
                                    "certificate (proven certified error at --eps-train from the current c_ij). "
                                    "Writes model.npz, log.json, log.csv and checkpoint.pt to --out.")
    tr.add_argument("--objective", choices=OBJECTIVES, required=True, help="training objective")
    tr.add_argument("--epochs", type=_pos_int, required=True, help="total epochs (with --resume: including done ones)")
    tr.add_argument("--hidden", type=_pos_int, default=500, help="hidden units m (default 500)")
    tr.add_argument("--batch-size", type=_pos_int, default=100, help="minibatch size (default 100)")
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--lr-decay-every", type=_pos_int, default=30, help="lr x 0.1 every N epochs (default 30)")
    tr.add_argument("--eps-train", type=float, default=0.1, help="radius of the logged dual certificate (default 0.1)")
    tr.add_argument("--sdp-lambda", type=float, default=0.05, help="penalty weight lambda (default 0.05)")
    tr.add_argument("--sdp-loss-scale", type=float, default=10.0,
                    help="factor on the mean hinge in the sdp objectives (default 10; see DESIGN.md §4)")
    tr.add_argument("--eig-iters", type=_pos_int, default=8,
                    help="sdp objectives: warm-started Lanczos matvecs per class pair per step (default 8)")
    tr.add_argument("--weight-refresh-every", type=_pos_int, default=20,
                    help="sdp-weighted: refresh the pair weights every N epochs (default 20)")
    tr.add_argument("--lp-eps-ramp-epochs", type=_pos_int, default=5,
                    help="lp: epochs over which the training radius grows linearly to --eps-train (default 5)")
    tr.add_argument("--snapshot-every", type=int, default=0,
                    help="also keep DIR/model_epochNNN.npz every N epochs (default 0: only the last model)")
    tr.add_argument("--at-eps", type=float, default=0.3, help="AT: PGD radius (default 0.3)")
    tr.add_argument("--at-step", type=float, default=0.1, help="AT: PGD step (default 0.1)")
    tr.add_argument("--at-steps", type=_pos_int, default=40, help="AT: PGD steps (default 40)")
    tr.add_argument("--data", metavar="DIR", default=None,
                    help="folder with the MNIST IDX files (default: the packaged 2000/1000-image sample)")
    tr.add_argument("--limit", type=_pos_int, default=None, help="use only the first N training examples")
    tr.add_argument("--test-limit", type=_pos_int, default=None, help="use only the first N test examples")
    tr.add_argument("--out", metavar="DIR", default="sdpcert-train", help="output folder (default ./sdpcert-train)")
    tr.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    tr.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    tr.add_argument("--threads", type=_pos_int, default=1,
                    help="cores (default 1; the sdp objectives give one to the eigen-solve thread)")
    tr.add_argument("--device", default="cpu",
                    help="torch device, e.g. cuda (default cpu; on CUDA the SDP penalty uses torch's eigh); refused "
                         "up front when torch cannot use it")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    from .reproduce.plan import NETWORK_KEYS

    rep = sub.add_parser("reproduce", help="the paper's experiments end to end: 7 networks, all bounds, figures, report",
                         description="Train (or reuse, by content hash) NT/Fro/Spe/AT-NN, SDP-NN (unweighted and "
                                     "weighted) and LP-NN on MNIST; certify each with the SDP, spectral, Frobenius "
                                     "and LP bounds and attack it with FGSM, PGD and CW; write Fig. 2, 3a, 3b, 4a, 4b "
                                     "(PNG + CSV), table1.md and REPORT.md next to the paper's numbers. Stages are "
                                     "kept in DIR: a rerun resumes. Full: ~80 minutes on 2 cores; --quick: 1-3 minutes.")
    rep.add_argument("--out", metavar="DIR", required=True, help="output folder (networks/, results/, figures, report)")
    rep.add_argument("--quick", action="store_true",
                     help="a few epochs on 2,000 training / 500 test images: checks the pipeline in minutes")
    rep.add_argument("--data", metavar="DIR", default=None,
                     help="folder with the MNIST IDX files (default: $SDPCERT_MNIST_DIR, else ~/.cache/sdpcert/mnist)")
    rep.add_argument("--only", type=lambda text: [t for t in text.split(",") if t], default=None,
                     help=f"comma-separated networks to train and evaluate now ({','.join(NETWORK_KEYS)}); the "
                          "figures and report use every network evaluated so far in DIR")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


# ----------------------------------------------------------------------------------------------- output
def _consoles() -> tuple[Any, Any]:
    from rich.console import Console

    # Created per call so that they write to the current sys.stdout / sys.stderr (pytest capture, redirects).
    return Console(file=sys.stdout), Console(file=sys.stderr)


class _Bars:
    """rich progress bars keyed by stage name; ``update(stage, done, total)`` matches the callbacks' signature."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_Bars":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}"


def _error_table(attack_names: Sequence[str], methods: Sequence[str], rows: Sequence[Sequence[str]]) -> Any:
    """The rich table of error percentages: eps, clean, one column per attack, one per certification method."""
    from rich.table import Table

    table = Table()
    headers = ["eps", "\nclean\nerror %", *(f"\n{name}\nerror %" for name in attack_names),
               *(f"{method}\ncertified\nerror %" for method in methods)]
    for header in headers:
        table.add_column(header, justify="right")
    for cells in rows:
        table.add_row(*cells)
    return table


def _print_errors(console: Any, title: str, rows: list[dict], methods: Sequence[str], with_pgd: bool) -> None:
    """Title line, table, legend. rows: {"eps", "clean_error", ["pgd_error"], "certified_error": {method: value}}."""
    legend = "clean: misclassified; certified error: not proven robust (an upper bound on the robust error)"
    if with_pgd:
        legend += "; PGD: fooled by the attack (a lower bound)"
    table = _error_table(["PGD"] if with_pgd else [], methods, [
        [f"{row['eps']:g}", _pct(row["clean_error"]), *([_pct(row["pgd_error"])] if with_pgd else []),
         *(_pct(row["certified_error"][m]) for m in methods)] for row in rows])
    console.print(title, highlight=False, soft_wrap=True, markup=False)
    console.print(table)
    console.print(legend, highlight=False, soft_wrap=True, markup=False)


# ----------------------------------------------------------------------------------------------- certify
def _load_data(args: argparse.Namespace, err: Any) -> tuple[Any, Any, str]:
    from .data import MNIST_DIR_ENV, load_mnist, load_mnist_sample

    if args.data is not None:
        if not Path(args.data).is_dir():
            raise SdpcertError(f"--data {args.data}: no such folder (it should hold the MNIST IDX files)")
        X, y = load_mnist(args.split, folder=args.data, limit=args.limit, dtype="float64")
        return X, y, f"MNIST {args.split} from {args.data}"
    if os.environ.get(MNIST_DIR_ENV):
        X, y = load_mnist(args.split, limit=args.limit, dtype="float64")
        return X, y, f"MNIST {args.split} from ${MNIST_DIR_ENV}={os.environ[MNIST_DIR_ENV]}"
    X, y = load_mnist_sample(args.split, limit=args.limit, dtype="float64")
    source = f"packaged MNIST sample ({args.split}, first {len(y)} images)"
    err.print(f"note: no --data and no ${MNIST_DIR_ENV}: using the {source}; "
              f"pass --data DIR for the full MNIST {args.split} set", highlight=False, soft_wrap=True, markup=False)
    return X, y, source


def _check_limit(args: argparse.Namespace, verb: str) -> None:
    """--limit 0 is refused before anything is loaded: an error rate over no examples is not a result."""
    if args.limit == 0:
        raise SdpcertError(f"--limit 0 leaves no examples to {verb}; use --limit 1 or more")


def _strict_json(value: Any, where: str, non_finite: list[str]) -> Any:
    """``value`` with every number that is not finite (inf, -inf, NaN) replaced by None; their locations (e.g.
    ``pair_sdp.upper[3][7]: inf``) are appended to ``non_finite``. Strict JSON has no such numbers."""
    import math

    if isinstance(value, dict):
        return {key: _strict_json(item, f"{where}.{key}" if where else str(key), non_finite)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item, f"{where}[{i}]", non_finite) for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        non_finite.append(f"{where}: {value}")
        return None
    return value


def _write_json(path: Path, report: dict) -> None:
    """Write ``report`` as strict JSON; a number that is not finite becomes null, listed under "non_finite"."""
    non_finite: list[str] = []
    strict = _strict_json(report, "", non_finite)
    if non_finite:
        strict["non_finite"] = {"note": "null stands for a number that is not finite (inf: no finite bound was "
                                        "proven; nan: undefined); each location and its value:",
                                "values": non_finite}
    path.write_text(json.dumps(strict, indent=2, allow_nan=False) + "\n")


def _json_path(args: argparse.Namespace) -> Optional[Path]:
    """--json OUT as a Path (None without it), refused up front when its folder does not exist."""
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise SdpcertError(f"cannot write --json {json_path}: folder {json_path.parent} does not exist")
    return json_path


def _load_model_and_data(args: argparse.Namespace, err: Any) -> tuple[Any, Any, Any, str]:
    """(net, X, y, source) for certify / attack: the model (file or packaged name), the data, their sizes checked."""
    from .pretrained import load_model

    net = load_model(args.model)
    X, y, source = _load_data(args, err)
    if X.shape[1] != net.d:
        raise ShapeError(f"model {args.model} takes d = {net.d} inputs, but the data ({source}) has "
                         f"{X.shape[1]} features per example")
    err.print(f"model {args.model}: {net!r}, fingerprint {net.fingerprint()[:16]}; data: {source}, n = {len(y)}",
              highlight=False, soft_wrap=True, markup=False)
    return net, X, y, source


def _finite_logits(net: Any, X: Any) -> Any:
    """The model's float64 logits on X, refused (NonFiniteError) when some overflow to inf/NaN: then no error rate,
    attack or certificate of this model means anything, and the pair SDPs need not be solved to find that out."""
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        logits = net.forward(X)
    overflowed = ~np.all(np.isfinite(logits), axis=1)
    if overflowed.any():
        raise NonFiniteError(f"the model's logits are not finite (they overflow float64) on {int(overflowed.sum())} "
                             f"of the {len(X)} examples, e.g. example {int(np.flatnonzero(overflowed)[0])}: the "
                             f"weights are too large for float64 on this data")
    return logits


def _cmd_certify(args: argparse.Namespace) -> int:
    from .certify import Certifier, check_eps, methods_for

    out, err = _consoles()
    eps_values = [check_eps(e) for e in args.eps]
    _check_limit(args, "certify")
    json_path = _json_path(args)

    t0 = time.perf_counter()
    net, X, y, source = _load_model_and_data(args, err)
    if len(y) == 0:
        raise SdpcertError(f"no examples to certify ({source}); use --limit 1 or more")
    _finite_logits(net, X)
    certifier = Certifier(net, rel_tol=args.rel_tol)
    t_load = time.perf_counter() - t0

    if args.methods is None:
        args.methods = list(methods_for(net))
    pairs = None
    t_pairs = 0.0
    if "sdp" in args.methods:
        t0 = time.perf_counter()
        with _Bars(err) as bars:
            pairs = certifier.pair_bounds(progress=lambda done, total: bars.update("pair SDPs", done, total))
        t_pairs = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = certifier.certify_grid(X, y, eps_values, args.methods)
    t_certify = time.perf_counter() - t0

    rows = [{"eps": eps, "clean_error": results[(eps, args.methods[0])].clean_error,
             "certified_error": {m: results[(eps, m)].certified_error for m in args.methods}} for eps in eps_values]
    _print_errors(out, f"{args.model} on {source} (n = {len(y)})", rows, args.methods, False)
    lines = [f"load {t_load:.2f} s", f"certify {t_certify:.2f} s"]
    if pairs is not None:
        max_gap = float(pairs.relative_gap.max()) if len(pairs.pairs) else 0.0
        lines.insert(1, f"pair SDPs {t_pairs:.2f} s ({len(pairs.pairs)} pairs, max relative gap {max_gap:.1e}, "
                        f"rel_tol {pairs.rel_tol:g})")
    out.print("timings: " + "; ".join(lines), highlight=False, soft_wrap=True, markup=False)

    if json_path is not None:
        report = {
            "model": {"path": str(args.model), "fingerprint": net.fingerprint(), "d": net.d, "m": net.m, "k": net.k,
                      "activation": net.activation},
            "data": {"source": source, "split": args.split, "n": int(len(y))},
            "eps": eps_values if len(eps_values) > 1 else eps_values[0],
            "n": int(len(y)),
            "methods": list(args.methods),
            "results": [results[(eps, m)].summary() for eps in eps_values for m in args.methods],
            "timings": {"load": t_load, "pair_sdp": t_pairs, "certify": t_certify},
        }
        if pairs is not None:
            report["pair_sdp"] = {
                "rel_tol": pairs.rel_tol,
                "pairs": pairs.pairs.tolist(),
                "upper": pairs.upper.tolist(),
                "lower": pairs.lower.tolist(),
                "max_relative_gap": float(pairs.relative_gap.max()) if len(pairs.pairs) else 0.0,
                "status": list(pairs.status),
                "sweeps": pairs.sweeps.tolist(),
                "solver_seconds": pairs.seconds,
            }
        _write_json(json_path, report)
        err.print(f"wrote {json_path}", highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- attack
_ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "cw": "CW"}


def _attack_list(text: str) -> list[str]:
    from .attacks import ATTACKS

    attacks = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [a for a in attacks if a not in ATTACKS]
    if bad or not attacks:
        raise SdpcertError(f"--methods: unknown attack(s) {', '.join(bad) if bad else repr(text)}; "
                           f"choose from {','.join(ATTACKS)}")
    return list(dict.fromkeys(attacks))


def _attack_settings(args: argparse.Namespace) -> dict:
    """Validated PGD / CW settings (raises SdpcertError with the option's name)."""
    import math

    if args.steps < 1:
        raise SdpcertError(f"--steps must be a positive integer; got {args.steps}")
    if args.restarts < 1:
        raise SdpcertError(f"--restarts must be a positive integer; got {args.restarts}")
    if args.step_size is not None and not (math.isfinite(args.step_size) and args.step_size > 0):
        raise SdpcertError(f"--step-size must be positive and finite; got {args.step_size}")
    return {"steps": args.steps, "restarts": args.restarts, "step_size": args.step_size, "seed": args.seed}


def _print_attack_table(console: Any, title: str, rows: list[dict], attacks: Sequence[str],
                        methods: Sequence[str]) -> None:
    """Title line, table, legend. rows: {"eps", "clean_error", "attacks": {a: {"error"}}, "any_error",
    ["certified": {method: {"certified_error"}}]}; certified columns only for the given methods."""
    names = [_ATTACK_NAMES[a] for a in attacks]
    legend = (f"clean: misclassified; {'/'.join(names)}: misclassified after the attack (a lower bound on the robust "
              f"error)")
    with_any = len(attacks) > 1
    if with_any:
        legend += "; any: fooled by at least one attack"
    if methods:
        legend += "; certified error: not proven robust (an upper bound on the robust error)"
    table = _error_table(names + (["any"] if with_any else []), methods, [
        [f"{row['eps']:g}", _pct(row["clean_error"]), *(_pct(row["attacks"][a]["error"]) for a in attacks),
         *([_pct(row["any_error"])] if with_any else []),
         *(_pct(row["certified"][m]["certified_error"]) for m in methods)] for row in rows])
    console.print(title, highlight=False, soft_wrap=True, markup=False)
    width = console.width
    try:  # natural width (up to 160): no truncated headers with all columns on an 80-column terminal or pipe
        console.width = max(width, 160)
        console.print(table)
    finally:
        console.width = width
    console.print(legend, highlight=False, soft_wrap=True, markup=False)


def _cmd_attack(args: argparse.Namespace) -> int:
    import numpy as np

    from .attacks import ATTACKS
    from .certify import Certifier, check_eps, methods_for

    out, err = _consoles()
    t_start = time.perf_counter()
    eps_values = [check_eps(e) for e in args.eps]
    attacks = _attack_list(args.methods)
    settings = _attack_settings(args)
    _check_limit(args, "attack")
    json_path = _json_path(args)

    t0 = time.perf_counter()
    net, X, y, source = _load_model_and_data(args, err)
    t_load = time.perf_counter() - t0
    if len(y) == 0:
        raise SdpcertError(f"no examples to attack ({source}); use --limit 1 or more")
    n = int(len(y))

    options = {"fgsm": {}, "pgd": dict(settings), "cw": dict(settings)}
    clean_wrong = np.argmax(_finite_logits(net, X), axis=1) != y
    fooled: dict[tuple[float, str], np.ndarray] = {}
    t_attack = {a: 0.0 for a in attacks}
    with _Bars(err) as bars:
        for a in attacks:
            bars.update(_ATTACK_NAMES[a], 0, len(eps_values))
        for i, eps in enumerate(eps_values):
            for a in attacks:
                t0 = time.perf_counter()
                fooled[(eps, a)] = ATTACKS[a](net, X, y, eps, **options[a])[1]
                t_attack[a] += time.perf_counter() - t0
                bars.update(_ATTACK_NAMES[a], i + 1, len(eps_values))

    methods: list[str] = []
    certs: dict = {}
    pairs = None
    t_pairs = t_certify = 0.0
    if args.check_certificates:
        methods = list(methods_for(net))
        certifier = Certifier(net)
        if "sdp" in methods:
            t0 = time.perf_counter()
            with _Bars(err) as bars:
                pairs = certifier.pair_bounds(progress=lambda done, total: bars.update("pair SDPs", done, total))
            t_pairs = time.perf_counter() - t0
        t0 = time.perf_counter()
        certs = certifier.certify_grid(X, y, eps_values, methods)
        t_certify = time.perf_counter() - t0

    rows = []
    broken_total = 0
    for eps in eps_values:
        any_fooled = np.logical_or.reduce([fooled[(eps, a)] for a in attacks])
        row: dict[str, Any] = {
            "eps": eps,
            "n": n,
            "clean_error": float(clean_wrong.mean()),
            "clean_wrong": int(clean_wrong.sum()),
            "attacks": {a: {"error": float(fooled[(eps, a)].mean()), "fooled": int(fooled[(eps, a)].sum())}
                        for a in attacks},
            "any_error": float(any_fooled.mean()),
            "any_fooled": int(any_fooled.sum()),
        }
        if methods:
            row["certified"] = {}
            for m in methods:
                result = certs[(eps, m)]
                broken = np.flatnonzero(result.certified & any_fooled)
                broken_by = {a: int((result.certified & fooled[(eps, a)]).sum()) for a in attacks}
                row["certified"][m] = {"certified_error": result.certified_error,
                                       "certified": int(result.certified.sum()),
                                       "broken": int(len(broken)), "broken_by": broken_by,
                                       "broken_indices": [int(i) for i in broken[:100]]}
                broken_total += int(len(broken))
        rows.append(row)

    attack_names = ", ".join(_ATTACK_NAMES[a] for a in attacks)
    attack_desc = attack_names
    if set(attacks) & {"pgd", "cw"}:
        step = "2.5 eps / steps" if settings["step_size"] is None else f"{settings['step_size']:g}"
        attack_desc += (f" ({settings['steps']} steps, {settings['restarts']} restart"
                        f"{'s' if settings['restarts'] != 1 else ''}, step size {step}, seed {settings['seed']})")
    _print_attack_table(out, f"{args.model} on {source} (n = {n}); attacks: {attack_desc}", rows, attacks, methods)
    lines = [f"load {t_load:.2f} s"] + [f"{_ATTACK_NAMES[a]} {t_attack[a]:.2f} s" for a in attacks]
    if pairs is not None:
        lines.append(f"pair SDPs {t_pairs:.2f} s ({len(pairs.pairs)} pairs)")
    if methods:
        lines.append(f"certify {t_certify:.2f} s")
    t_total = time.perf_counter() - t_start
    out.print("timings: " + "; ".join(lines), highlight=False, soft_wrap=True, markup=False)

    if json_path is not None:
        report: dict[str, Any] = {
            "model": {"path": str(args.model), "fingerprint": net.fingerprint(), "d": net.d, "m": net.m, "k": net.k,
                      "activation": net.activation},
            "data": {"source": source, "split": args.split, "n": n},
            "eps": eps_values if len(eps_values) > 1 else eps_values[0],
            "n": n,
            "attacks": list(attacks),
            "settings": {**settings, "step_size_used": {
                f"{eps:g}": (2.5 * eps / settings["steps"] if settings["step_size"] is None else settings["step_size"])
                for eps in eps_values}, "fgsm": "one signed-gradient step of size eps"},
            "check_certificates": bool(args.check_certificates),
            "results": rows,
            "timings": {"load": t_load, "attacks": t_attack, "pair_sdp": t_pairs, "certify": t_certify,
                        "total": t_total},
        }
        if methods:
            report["certification_methods"] = methods
            report["broken_total"] = broken_total
        _write_json(json_path, report)
        err.print(f"wrote {json_path}", highlight=False, soft_wrap=True, markup=False)

    if not methods:
        return EXIT_OK
    if broken_total:
        for row in rows:
            for m, c in row["certified"].items():
                if c["broken"]:
                    err.print(f"[bold red]UNSOUND: eps {row['eps']:g}, {m}: {c['broken']} certified point(s) broken "
                              f"by {attack_names}, indices {c['broken_indices'][:20]}[/bold red]")
        out.print(f"[bold red]{broken_total} certified points broken by {attack_names}: a certificate "
                  f"is wrong[/bold red]")
        raise UnsoundCertificateError(f"{broken_total} certified point(s) broken by {attack_names} (listed above): "
                                      f"a certificate is unsound")
    out.print(f"0 certified points broken by {attack_desc} (n = {n}, every eps and certification method: "
              f"{', '.join(methods)})", highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from .certify import METHODS
    from .demo import run_demo

    out, err = _consoles()
    with _Bars(err) as bars:
        summary = run_demo(args.seconds, args.out, args.eps, args.seed, epochs=args.epochs,
                           progress=bars.update, include_packaged=not args.skip_packaged,
                           log=lambda message: err.print(message, highlight=False, soft_wrap=True, markup=False))
    training = summary["training"]
    rows = [{"eps": r["eps"], "clean_error": r["clean_error"], "pgd_error": r["pgd_error"],
             "certified_error": {m: r["methods"][m]["certified_error"] for m in METHODS}} for r in summary["results"]]
    _print_errors(out, f"784-{summary['model']['m']}-10 ReLU net, packaged MNIST test sample "
                       f"(n = {summary['data']['n']})", rows, METHODS, True)
    packaged = summary.get("packaged_sdp_nn")
    if packaged is not None:
        methods = list(packaged["methods"])
        full = packaged["full_test_set"]
        _print_errors(out, f"the packaged SDP-NN (784-500-10 ReLU, trained with the paper's recipe at eps 0.1), same "
                           f"{packaged['n']} images", [{"eps": packaged["eps"], "clean_error": packaged["clean_error"],
                                                        "pgd_error": packaged["pgd_error"],
                                                        "certified_error": {m: packaged["methods"][m]["certified_error"]
                                                                            for m in methods}}], methods, True)
        out.print(f"(on all {full['n']} MNIST test images, when it was packaged: clean {_pct(full['clean_error'])}%, "
                  f"PGD {_pct(full['attack_errors']['pgd'])}%, SDP-certified {_pct(full['certified_error']['sdp'])}%; "
                  f"the paper's SDP-NN: 4.2%, 15%, 35%)", highlight=False, soft_wrap=True, markup=False)
    t = summary["timings"]
    pair = summary["pair_sdp"]
    out.print(f"training: {training['epochs']} epochs ({training['stopped_by']}) in {t['train']:.1f} s, "
              f"{training['objective']}", highlight=False, soft_wrap=True, markup=False)
    out.print(f"pair SDPs: {pair['pairs']} pairs in {t['pair_sdp']:.2f} s, max relative gap "
              f"{pair['max_relative_gap']:.1e}; certify {t['certify']:.2f} s; PGD {t['pgd']:.2f} s; "
              f"total {t['total']:.1f} s", highlight=False, soft_wrap=True, markup=False)
    out.print(f"wrote {summary['model']['path']} and {summary['summary_path']}", highlight=False, soft_wrap=True, markup=False)
    broken = summary["broken_total"]
    if broken:
        for r in summary["results"]:
            for m, s in r["methods"].items():
                if s["broken"]:
                    err.print(f"[bold red]UNSOUND: eps {r['eps']:g}, {m}: {s['broken']} certified point(s) broken "
                              f"by PGD, indices {s['broken_indices'][:20]}[/bold red]")
        if packaged is not None:
            for m, s in packaged["methods"].items():
                if s["broken"]:
                    err.print(f"[bold red]UNSOUND: packaged SDP-NN, eps {packaged['eps']:g}, {m}: {s['broken']} "
                              f"certified point(s) broken by PGD, indices {s['broken_indices'][:20]}[/bold red]")
        out.print(f"[bold red]{broken} certified points broken by PGD: a certificate is wrong[/bold red]")
        raise UnsoundCertificateError(f"{broken} certified point(s) broken by PGD (listed above): a certificate is "
                                      f"unsound")
    steps = summary["pgd"]["steps"]
    out.print(f"0 certified points broken by PGD ({steps} steps, every test image, every eps and method, both nets)",
              highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    out, err = _consoles()
    config = TrainConfig(objective=args.objective, hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, lr_decay_every=args.lr_decay_every, seed=args.seed, eps_train=args.eps_train,
                         sdp_lambda=args.sdp_lambda, sdp_loss_scale=args.sdp_loss_scale,
                         weight_refresh_every=args.weight_refresh_every, at_eps=args.at_eps, at_step=args.at_step,
                         at_steps=args.at_steps, data=args.data, limit=args.limit, test_limit=args.test_limit,
                         out_dir=args.out, resume=args.resume, threads=args.threads, eig_iters=args.eig_iters,
                         lp_eps_ramp_epochs=args.lp_eps_ramp_epochs, snapshot_every=args.snapshot_every,
                         device=args.device)
    if args.data is None:
        err.print("note: no --data: training on the packaged MNIST sample (2000 train / 1000 test images)",
                  highlight=False, soft_wrap=True, markup=False)
    t0 = time.perf_counter()
    result = train(config, progress=not args.no_progress,
                   log=lambda line: out.print(line, highlight=False, soft_wrap=True, markup=False))
    history = result["history"]
    if not history:
        out.print("nothing to do: the checkpoint already has all epochs", highlight=False, soft_wrap=True,
                  markup=False)
    else:
        last = history[-1]
        summary = (f"done: {args.objective}, {len(history)} epochs, clean test error {100 * last['clean_error']:.2f}%")
        if "dual_certified_error" in last:
            summary += (f", dual-certificate certified error {100 * last['dual_certified_error']:.2f}% "
                        f"at eps {last['eps_train']:g}")
        out.print(summary + f" ({time.perf_counter() - t0:.1f} s)", highlight=False, soft_wrap=True, markup=False)
    paths = result["paths"]
    out.print(f"wrote {paths['model']}, {paths['log_json']}, {paths['log_csv']}, {paths['checkpoint']}",
              highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- reproduce
def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .data import _resolve_folder, load_mnist
    from .reproduce import reproduce

    out, err = _consoles()
    folder, origin = _resolve_folder(args.data)
    load_mnist("test", folder=folder, limit=1)  # a clear error now if MNIST is missing or corrupt, not after training
    command = "sdpcert reproduce" + (" --quick" if args.quick else "")
    result = reproduce(args.out, str(folder), quick=args.quick, only=args.only, progress=not args.no_progress,
                       log=lambda line: out.print(line, highlight=False, soft_wrap=True, markup=False),
                       command=command)
    out.print(f"done in {result['seconds'] / 60:.1f} min: {Path(args.out) / 'REPORT.md'}", highlight=False,
              soft_wrap=True, markup=False)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- entry point
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``sdpcert`` command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (code 2), --help / --version (code 0)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INPUT
    handler = {"certify": _cmd_certify, "attack": _cmd_attack, "demo": _cmd_demo,
               "train": _cmd_train, "reproduce": _cmd_reproduce}[args.command]
    try:
        return handler(args)
    except UnsoundCertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNSOUND
    except SdpcertError as exc:  # bad input, including arguments the compiled core refused (CoreArgumentError)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:  # missing / unreadable / unwritable files named on the command line
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{':' + name if name else ''}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
