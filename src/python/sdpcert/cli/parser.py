"""The ``sdpcert`` command line's arguments: :func:`build_parser`, and the argument types that turn text into
numbers (a usage error, exit code 2, for text that is not one). Values are range-checked later, by the commands.
"""

from __future__ import annotations

import argparse

__all__ = ["build_parser"]


# ----------------------------------------------------------------------------------------------- argument types
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
    from ..certify import ALL_METHODS

    methods = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from {','.join(ALL_METHODS)}")
    return list(dict.fromkeys(methods))


def _input_domain(text: str):
    """'none' -> None (the whole l_inf ball); 'LO,HI' -> (LO, HI) (checked later: LO < HI, data inside)."""
    if text.strip().lower() == "none":
        return None
    parts = [part.strip() for part in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,1) or none; got {text!r}") from None


def _input_domain_or_auto(text: str):
    """As ``_input_domain``, and 'auto' -> 'auto': [0, 1] when the data lie in it, else none (decided by the command
    once the data are loaded: ``inputs.resolve_input_domain``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _input_domain(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,1), auto or none; got {text!r}") from None


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return value


def _index_list(text: str) -> list[int]:
    """'0,5,9' -> [0, 5, 9] (non-negative, in order, repeats dropped); checked against the data's size later."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated example indices, e.g. 0,5,9; got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative indices; got {text!r}")
    return list(dict.fromkeys(values))


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


#: ``certify --input-domain``'s default: [0, 1] for data in [0, 1] (images: pixels cannot leave it, and the per-example
#: methods certify far more over the ball intersected with it), else the whole ball; the report says which.
CERTIFY_INPUT_DOMAIN = "auto"

_DATA_HELP = ("the data: a folder of MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST; raw or .gz) or an "
              ".npz holding exactly X (n, d) floats and y (n,) integer labels; checked (MNIST's md5s when the files "
              "claim to be MNIST, else headers, sizes, shapes, value and label ranges), and d and k must be the "
              "model's (default: $SDPCERT_MNIST_DIR, which must hold MNIST; if neither is given, the packaged "
              "1000-image MNIST test sample)")
_SPLIT_HELP = "the split of an IDX folder (default: test; an .npz is one set)"
_MODEL_HELP = ("the model: a file written by TwoLayerNet.save (.npz), an ONNX file (.onnx: [Flatten] -> Gemm | "
               "MatMul+Add -> Relu | Tanh | Sigmoid -> Gemm | MatMul+Add; needs pip install 'sdpcert[onnx]'), or a "
               "packaged model's name (sdp-nn: the SDP-NN of the paper's recipe; sdp-nn-cs: the SDP-NN that meets the "
               "paper's numbers; crown-box-nn: certified training over the pixel box)")

_JSON_HELP = ("write all numbers to this JSON file (numbers that are not finite, e.g. an unproven pair bound, are "
              "written as null and listed under \"non_finite\")")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..certify import ALL_METHODS, CASCADE, METHOD_TABLE, METHODS
    from ..experiments.demo import DEFAULT_EPS
    from ..experiments.reproduce.plan import NETWORK_KEYS
    from ..training import TRAIN_OBJECTIVES
    from ..training.config import SDP_HINGE_NAMES

    PER_EXAMPLE = [m for m in ALL_METHODS if METHOD_TABLE[m].uses_input_domain]
    parser = argparse.ArgumentParser(
        prog="sdpcert",
        description="Sound SDP robustness certificates for one-hidden-layer networks "
                    "(Raghunathan, Steinhardt & Liang, ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"sdpcert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cert = sub.add_parser("certify", help="certify a saved model (.npz or .onnx) at an l_inf radius",
                          description="Certify a saved TwoLayerNet (.npz or .onnx) on MNIST or any other data set "
                                      "(--data): clean error and certified error "
                                      "of the SDP, spectral, Frobenius and LP (Wong-Kolter) bounds, and on request "
                                      "of interval bounds and best (per example: interval -> lp -> sdp -> ... until "
                                      "certified). With --input-domain 0,1 the per-example methods certify the "
                                      "ball intersected with the pixel box [0, 1].")
    cert.add_argument("model", help=_MODEL_HELP)
    cert.add_argument("--eps", type=_float_list, required=True,
                      help="l_inf radius, or comma-separated radii (pixels in [0, 1]), e.g. 0.1 or 0.05,0.1")
    cert.add_argument("--data", metavar="PATH", default=None, help=_DATA_HELP)
    cert.add_argument("--split", choices=("train", "test"), default="test", help=_SPLIT_HELP)
    cert.add_argument("--limit", type=_nonneg_int, default=None, help="use only the first N examples (N >= 1)")
    cert.add_argument("--methods", type=_method_list, default=None,
                      help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: {', '.join(METHODS)} and "
                           "best, those that apply to the model; the LPs need a ReLU net; best: "
                           f"{' -> '.join(CASCADE)} per example until certified)")
    cert.add_argument("--input-domain", type=_input_domain_or_auto, default=CERTIFY_INPUT_DOMAIN, metavar="LO,HI",
                      help="the inputs' box, e.g. 0,1 for pixels in [0, 1]: the per-example methods "
                           f"({', '.join(PER_EXAMPLE)}) then certify the ball intersected with it; "
                           f"{', '.join(m for m in ALL_METHODS if m not in PER_EXAMPLE)} always certify the whole "
                           "ball. none: the whole ball for every method. Default auto: 0,1 when every input lies in "
                           "[0, 1] (images), else none; the report names the set")
    cert.add_argument("--no-progress", action="store_true", help="no progress bars")
    cert.add_argument("--rel-tol", type=float, default=1e-6,
                      help="target relative gap of each pair SDP (default 1e-6; the bound is proven at any tol)")
    cert.add_argument("--json", metavar="OUT", default=None, help=_JSON_HELP)

    att = sub.add_parser("attack", help="attack a saved model (.npz or .onnx) with FGSM / PGD / CW at l_inf radii",
                         description="Attack a saved TwoLayerNet (.npz or .onnx) on MNIST or any other data set whose "
                                     "inputs lie in [0, 1] (--data): clean error and the error after "
                                     "FGSM, PGD and CW-l_inf attacks (lower bounds on the robust error). With "
                                     "--check-certificates, also certify the same points with every bound that "
                                     "applies and check that no attack broke a certified point (exit code 3 if one "
                                     "did).")
    att.add_argument("model", help=_MODEL_HELP)
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
    att.add_argument("--data", metavar="PATH", default=None, help=_DATA_HELP)
    att.add_argument("--split", choices=("train", "test"), default="test", help=_SPLIT_HELP)
    att.add_argument("--limit", type=_nonneg_int, default=None, help="use only the first N examples (N >= 1)")
    att.add_argument("--check-certificates", action="store_true",
                     help="also certify the points with every method that applies (sdp, spectral, frobenius, lp) "
                          "and count the certified points an attack broke (exit code 3 if any)")
    att.add_argument("--certify-methods", type=_method_list, default=None, metavar="METHODS",
                     help="with --check-certificates: the certification methods (default sdp,spectral,frobenius,lp "
                          "that apply; also interval, best)")
    att.add_argument("--input-domain", type=_input_domain_or_auto, default="auto", metavar="LO,HI",
                     help="with --check-certificates: the box the certificates are proven for, 0,1 (the attacks' "
                          "own box: they clip to [0, 1]; also what the default auto means here) or none (the whole "
                          "ball)")
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
    demo.add_argument("--data", metavar="PATH", default=None,
                      help="part 1 on another data set with inputs in [0, 1]: a folder of MNIST-format IDX files "
                           "(trained on its train split, certified and attacked on its test split) or an .npz with "
                           "X and y (both on all of it); the net's d and k follow the data, and part 2 runs only on "
                           "MNIST itself (default: the packaged MNIST sample)")

    tr = sub.add_parser("train", help="train NT/Fro/Spe/AT/SDP/LP-NN networks (paper §6) with per-epoch logs",
                        description="Train a d-m-k ReLU net (784-m-10 on MNIST; d and k follow --data) with one of "
                                    "the paper's objectives. Every epoch logs "
                                    "the training loss, the clean test error and, for sdp objectives, the dual "
                                    "certificate (proven certified error at --eps-train from the current c_ij). "
                                    "Writes model.npz, log.json, log.csv and checkpoint.pt to --out.")
    tr.add_argument("--objective", choices=TRAIN_OBJECTIVES, required=True,
                    help="training objective: the paper's seven, or crown-box (the robust cross-entropy of "
                         "linear-relaxation margin bounds over the ball intersected with --input-domain)")
    tr.add_argument("--epochs", type=_pos_int, required=True, help="total epochs (with --resume: including done ones)")
    tr.add_argument("--hidden", type=_pos_int, default=500, help="hidden units m (default 500)")
    tr.add_argument("--batch-size", type=_pos_int, default=100, help="minibatch size (default 100)")
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--lr-decay-every", type=_pos_int, default=30, help="lr x 0.1 every N epochs (default 30)")
    tr.add_argument("--eps-train", type=float, default=0.1,
                    help="radius of the logged dual certificate; lp, crown-box: the training radius (default 0.1)")
    tr.add_argument("--sdp-lambda", type=float, default=0.05, help="penalty weight lambda (default 0.05)")
    tr.add_argument("--sdp-loss-scale", type=float, default=10.0,
                    help="factor on the mean hinge in the sdp objectives (default 10; see docs/design.md §2)")
    tr.add_argument("--sdp-hinge", choices=SDP_HINGE_NAMES, default="ww",
                    help="sdp objectives: the multiclass hinge, ww (Weston-Watkins: every wrong class) or cs "
                         "(Crammer-Singer: the closest wrong class) (default ww)")
    tr.add_argument("--eig-iters", type=_pos_int, default=8,
                    help="sdp objectives and --cert-sdp-lambda: warm-started Lanczos matvecs per class pair per "
                         "step (default 8)")
    tr.add_argument("--weight-refresh-every", type=_pos_int, default=20,
                    help="sdp-weighted: refresh the pair weights every N epochs (default 20)")
    tr.add_argument("--lp-eps-ramp-epochs", type=_pos_int, default=5,
                    help="lp: epochs over which the training radius grows linearly to --eps-train (default 5)")
    tr.add_argument("--eval-eps", type=float, default=None,
                    help="lp, crown-box: radius of the proven LP certificate logged every epoch (default: "
                         "--eps-train)")
    tr.add_argument("--input-domain", type=_input_domain, default=(0.0, 1.0), metavar="LO,HI",
                    help="crown-box: the box the inputs live in, intersected with every ball in the training bound "
                         "and the logged certificate (default 0,1 for pixels; none: the whole ball)")
    tr.add_argument("--cert-warmup-epochs", type=_nonneg_int, default=0,
                    help="crown-box: epochs of natural training (radius 0) before the ramp (default 0)")
    tr.add_argument("--cert-ramp-epochs", type=_nonneg_int, default=8,
                    help="crown-box: epochs over which the training radius grows linearly from 0 to --eps-train and "
                         "kappa moves to --cert-kappa-end, per step (default 8)")
    tr.add_argument("--cert-kappa-start", type=float, default=1.0,
                    help="crown-box: weight of the natural cross-entropy at the start (default 1)")
    tr.add_argument("--cert-kappa-end", type=float, default=0.0,
                    help="crown-box: weight of the natural cross-entropy after the ramp; the robust one gets "
                         "1 - kappa (default 0)")
    tr.add_argument("--cert-lower-slopes", choices=("adaptive", "chord"), default="chord",
                    help="crown-box: lower slope of unstable units, chord (Wong-Kolter) or adaptive (CROWN) "
                         "(default chord)")
    tr.add_argument("--cert-interval-weight", type=float, default=0.0,
                    help="crown-box: weight in [0, 1] of the interval (IBP) bound mixed into the margin bounds "
                         "(default 0)")
    tr.add_argument("--cert-pgd-weight", type=float, default=0.0,
                    help="crown-box: share in [0, 1] of the robust term taken by the cross-entropy on PGD examples "
                         "at the same radius in the input box (default 0: the bounds only)")
    tr.add_argument("--cert-pgd-steps", type=_pos_int, default=8,
                    help="crown-box: PGD steps of --cert-pgd-weight's attack, each 2.5 radius / steps (default 8)")
    tr.add_argument("--cert-sdp-lambda", type=float, default=0.0,
                    help="crown-box: weight of the SDP dual penalty (the sdp objective's, k - 1 pairs sharing a "
                         "random class per step) added to the loss, ramped in with the radius (default 0: none)")
    tr.add_argument("--snapshot-every", type=int, default=0,
                    help="also keep DIR/model_epochNNN.npz every N epochs (default 0: only the last model)")
    tr.add_argument("--at-eps", type=float, default=0.3, help="AT: PGD radius (default 0.3)")
    tr.add_argument("--at-step", type=float, default=0.1, help="AT: PGD step (default 0.1)")
    tr.add_argument("--at-steps", type=_pos_int, default=40, help="AT: PGD steps (default 40)")
    tr.add_argument("--data", metavar="PATH", default=None,
                    help="a folder of MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST: its train and "
                         "test splits) or an .npz with X (n, d) floats and y (n,) integer labels (trained and "
                         "evaluated on all of it); the net's d and k follow the data, k(k-1)/2 class pairs for the "
                         "sdp objectives (default: the packaged 2000/1000-image MNIST sample)")
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

    exp = sub.add_parser("export-vnnlib", help="write the l_inf robustness property of each example as a VNNLIB file",
                         description="Write one VNNLIB file per example (and radius) in VNN-COMP's robustness form: "
                                     "the input box [x - eps, x + eps] (clipped to --input-domain), rounded outward, "
                                     "and the output property 'some Y_j >= Y_y' (unsat means robust). With --onnx "
                                     "also the model as DIR/model.onnx. Everything is checked before anything is "
                                     "written.")
    exp.add_argument("model", help=_MODEL_HELP)
    exp.add_argument("--eps", type=_float_list, required=True,
                     help="l_inf radius, or comma-separated radii (one file per example and radius)")
    exp.add_argument("--data", metavar="PATH", default=None, help=_DATA_HELP)
    exp.add_argument("--split", choices=("train", "test"), default="test", help=_SPLIT_HELP)
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--indices", type=_index_list, default=None, metavar="I,J,...",
                       help="the examples to export, by index, e.g. 0,5,9 (default: all)")
    which.add_argument("--limit", type=_nonneg_int, default=None, help="export the first N examples (N >= 1)")
    exp.add_argument("--out", metavar="DIR", required=True,
                     help="folder for the files, prop_<index>_eps_<eps>.vnnlib (created if needed)")
    exp.add_argument("--input-domain", type=_input_domain, default="none", metavar="LO,HI",
                     help="clip each box to [LO, HI] in every coordinate, e.g. 0,1 for pixels (default none: the "
                          "whole ball); the examples must lie inside")
    exp.add_argument("--onnx", action="store_true", help="also write the model as DIR/model.onnx")

    ver = sub.add_parser("verify", help="answer a VNNLIB robustness property: unsat, sat or unknown",
                         description="Answer one VNNLIB robustness property (the subset export-vnnlib writes: an "
                                     "input box and 'some Y_j >= Y_y') for a model, as VNN-COMP tools do: prints "
                                     "exactly one of unsat (proven robust on the box by the certification methods), "
                                     "sat (PGD found an input in the box whose margin is >= 0, re-checked in float64) "
                                     "or unknown on stdout, exit code 0 for each.")
    ver.add_argument("model", help=_MODEL_HELP)
    ver.add_argument("property", help="the VNNLIB file")
    ver.add_argument("--methods", type=_method_list, default=["best"],
                     help="comma-separated certification methods tried in turn until one proves the box (default "
                          "best: interval -> lp -> sdp -> ... ; also sdp, spectral, frobenius, lp, interval)")
    ver.add_argument("--timeout", type=float, default=None,
                     help="seconds; checked between the stages (each method, the attack): unknown when it runs out")
    ver.add_argument("--counterexample", metavar="FILE", default=None,
                     help="on sat, write the counterexample here as ((X_0 v) ... (Y_0 v) ...) (VNN-COMP's form)")
    ver.add_argument("--steps", type=_pos_int, default=100, help="PGD steps per restart (default 100)")
    ver.add_argument("--restarts", type=_pos_int, default=5, help="PGD random restarts (default 5)")
    ver.add_argument("--seed", type=_seed, default=0, help="seed of PGD's random starts (default 0)")

    rep = sub.add_parser("reproduce", help="the paper's experiments end to end: its 7 networks (and CROWN-box-NN, "
                                           "ours), all bounds, figures, report",
                         description="Train (or reuse, by content hash) NT/Fro/Spe/AT-NN, SDP-NN (unweighted and "
                                     "weighted) and LP-NN on MNIST, and beyond the paper CROWN-box-NN (the packaged "
                                     "crown-box-nn's recipe); certify each with the SDP, spectral, Frobenius "
                                     "and LP bounds (CROWN-box-NN also with lp and best over the ball intersected "
                                     "with [0, 1]) and attack it with FGSM, PGD and CW; write Fig. 2, 3a, 3b, 4a, 4b "
                                     "(PNG + CSV; the paper's networks), table1.md and REPORT.md next to the paper's "
                                     "numbers. Stages are kept in DIR: a rerun resumes. Full: ~80 minutes on 2 cores "
                                     "for the paper's networks, 10-30 more for CROWN-box-NN; --quick: a few minutes.")
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
