"""One function per ``sdpcert`` command: read and check the arguments, call the package, print and write the
results (:mod:`.output`). The numerical work lives in :mod:`sdpcert.certify`, :mod:`sdpcert.attacks`,
:mod:`sdpcert.training` and :mod:`sdpcert.experiments`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._checks import check_eps
from ..attacks import ATTACKS
from ..certify import METHODS, Certifier, methods_for
from ..certify.result import domain_summary
from ..data import load_mnist, resolve_mnist_folder
from ..errors import SdpcertError
from ..experiments.soundness import soundness_entry
from .inputs import (attack_list, attack_settings, check_limit, data_report, data_source, finite_logits,
                     json_path as json_path_of, load_model_and_data, load_model_arg, resolve_input_domain)
from .output import (ATTACK_NAMES, Bars, consoles, domain_text, fail_unsound, model_info, pct, print_attack_table,
                     print_errors, write_json)

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_INPUT", "EXIT_UNSOUND", "cmd_certify", "cmd_attack", "cmd_demo", "cmd_train",
           "cmd_export_vnnlib", "cmd_verify", "cmd_reproduce"]

EXIT_OK = 0  # success
EXIT_INPUT = 2  # bad input: a usage error, an SdpcertError, a missing or unwritable file
EXIT_UNSOUND = 3  # an attack broke a certified point (UnsoundCertificateError)


def cmd_certify(args: argparse.Namespace) -> int:
    out, err = consoles()
    eps_values = [check_eps(e) for e in args.eps]
    check_limit(args, "certify")
    json_path = json_path_of(args)

    t0 = time.perf_counter()
    net, data = load_model_and_data(args, err)
    X, y, source = data.X, data.y, data_source(data)
    if len(y) == 0:
        raise SdpcertError(f"no examples to certify ({source}); use --limit 1 or more")
    finite_logits(net, X)
    certifier = Certifier(net, rel_tol=args.rel_tol, input_domain=resolve_input_domain(args.input_domain, X))
    t_load = time.perf_counter() - t0

    if args.methods is None:
        args.methods = [*methods_for(net), "best"]
    results, pairs, t_pairs, t_certify = _certify_timed(certifier, X, y, eps_values, args.methods, err,
                                                        progress=not args.no_progress)

    rows = [{"eps": eps, "clean_error": results[(eps, args.methods[0])].clean_error,
             "certified_error": {m: results[(eps, m)].certified_error for m in args.methods}} for eps in eps_values]
    print_errors(out, f"{args.model} on {source} (n = {len(y)}); "
                      f"{domain_text(certifier.input_domain, args.methods)}", rows,
                 args.methods, False)
    for eps in eps_values:
        if "best" in args.methods:
            counts = results[(eps, "best")].certified_by_counts()
            out.print(f"best at eps {eps:g}: certified by " + ", ".join(f"{m} {c}" for m, c in counts.items()),
                      highlight=False, soft_wrap=True, markup=False)
    out.print(f"data: {data.describe()}", highlight=False, soft_wrap=True, markup=False)
    lines = [f"load {t_load:.2f} s", f"certify {t_certify:.2f} s"]
    if pairs is not None:
        max_gap = float(pairs.relative_gap.max()) if len(pairs.pairs) else 0.0
        where = "" if "sdp" in args.methods else ", solved for best's sdp stage, inside certify"
        lines.insert(1, f"pair SDPs {t_pairs:.2f} s ({len(pairs.pairs)} pairs, max relative gap {max_gap:.1e}, "
                        f"rel_tol {pairs.rel_tol:g}{where})")
    out.print("timings: " + "; ".join(lines), highlight=False, soft_wrap=True, markup=False)

    if json_path is not None:
        report = {
            "model": model_info(net, args.model),
            "data": data_report(data, args.limit),
            "eps": eps_values if len(eps_values) > 1 else eps_values[0],
            "n": int(len(y)),
            "methods": list(args.methods),
            "input_domain": domain_summary(certifier.input_domain),
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
        write_json(json_path, report)
        err.print(f"wrote {json_path}", highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_attack(args: argparse.Namespace) -> int:
    out, err = consoles()
    t_start = time.perf_counter()
    eps_values = [check_eps(e) for e in args.eps]
    attacks = attack_list(args.methods)
    settings = attack_settings(args)
    check_limit(args, "attack")
    json_path = json_path_of(args)

    t0 = time.perf_counter()
    net, data = load_model_and_data(args, err)
    X, y, source = data.X, data.y, data_source(data)
    t_load = time.perf_counter() - t0
    if len(y) == 0:
        raise SdpcertError(f"no examples to attack ({source}); use --limit 1 or more")
    if X.min() < 0 or X.max() > 1:  # refused here, before any progress bar, rather than by the first attack
        raise SdpcertError(f"the data ({source}) lies in [{X.min():g}, {X.max():g}], but the attacks search the ball "
                           f"intersected with [0, 1]: the inputs must lie in [0, 1]")
    n = int(len(y))

    clean_wrong = np.argmax(finite_logits(net, X), axis=1) != y
    fooled, t_attack = _run_attacks(net, X, y, eps_values, attacks, settings, err)
    domain = resolve_input_domain(args.input_domain, X)  # the data are in [0, 1] here: auto means 0,1
    if domain is not None and tuple(domain) != (0.0, 1.0):
        raise SdpcertError(f"--input-domain {domain[0]:g},{domain[1]:g}: the attacks search [0, 1] (they clip to "
                           f"it), so the certificates they check must be proven for 0,1 or none (the whole ball)")
    methods: list[str] = []
    if args.check_certificates:
        methods = list(args.certify_methods) if args.certify_methods is not None else list(methods_for(net))
    certs: dict = {}
    pairs = None
    t_pairs = t_certify = 0.0
    if methods:
        # a certificate for the box [0, 1] is checked by attacks in the same box (every attack clips to [0, 1]); one
        # for the whole ball covers that box too
        certs, pairs, t_pairs, t_certify = _certify_timed(Certifier(net, input_domain=domain), X, y, eps_values,
                                                          methods, err)
    rows = [_attack_row(eps, clean_wrong, {a: fooled[(eps, a)] for a in attacks},
                        {m: certs[(eps, m)] for m in methods}) for eps in eps_values]
    broken_total = sum(entry["broken"] for row in rows for entry in row.get("certified", {}).values())

    attack_names = ", ".join(ATTACK_NAMES[a] for a in attacks)
    attack_desc = attack_names
    if set(attacks) & {"pgd", "cw"}:
        step = "2.5 eps / steps" if settings["step_size"] is None else f"{settings['step_size']:g}"
        attack_desc += (f" ({settings['steps']} steps, {settings['restarts']} restart"
                        f"{'s' if settings['restarts'] != 1 else ''}, step size {step}, seed {settings['seed']})")
    title = f"{args.model} on {source} (n = {n}); attacks: {attack_desc}"
    if methods:
        title += f"; {domain_text(domain_of(domain, net.d))}"
    print_attack_table(out, title, rows, attacks, methods)
    out.print(f"data: {data.describe()}", highlight=False, soft_wrap=True, markup=False)
    lines = [f"load {t_load:.2f} s"] + [f"{ATTACK_NAMES[a]} {t_attack[a]:.2f} s" for a in attacks]
    if pairs is not None:
        lines.append(f"pair SDPs {t_pairs:.2f} s ({len(pairs.pairs)} pairs)")
    if methods:
        lines.append(f"certify {t_certify:.2f} s")
    t_total = time.perf_counter() - t_start
    out.print("timings: " + "; ".join(lines), highlight=False, soft_wrap=True, markup=False)

    if json_path is not None:
        report: dict[str, Any] = {
            "model": model_info(net, args.model),
            "data": data_report(data, args.limit),
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
            report["certification_input_domain"] = domain_summary(domain)
            report["broken_total"] = broken_total
        write_json(json_path, report)
        err.print(f"wrote {json_path}", highlight=False, soft_wrap=True, markup=False)

    if not methods:
        return EXIT_OK
    if broken_total:
        fail_unsound(out, err, broken_total, attack_names,
                     ((f"eps {row['eps']:g}", m, entry) for row in rows for m, entry in row["certified"].items()))
    out.print(f"0 certified points broken by {attack_desc} (n = {n}, every eps and certification method: "
              f"{', '.join(methods)})", highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..experiments.demo import run_demo

    out, err = consoles()
    with Bars(err) as bars:
        summary = run_demo(args.seconds, args.out, args.eps, args.seed, epochs=args.epochs,
                           progress=bars.update, include_packaged=not args.skip_packaged, data=args.data,
                           log=lambda message: err.print(message, highlight=False, soft_wrap=True, markup=False))
    training = summary["training"]
    rows = [{"eps": r["eps"], "clean_error": r["clean_error"], "pgd_error": r["pgd_error"],
             "certified_error": {m: r["methods"][m]["certified_error"] for m in METHODS}} for r in summary["results"]]
    model, test = summary["model"], summary["data"]["test"]
    on_what = "packaged MNIST test sample" if args.data is None else \
        f"{test['name']}{' ' + test['split'] if test['split'] else ''} (sha256 {test['sha256'][:16]})"
    print_errors(out, f"{model['d']}-{model['m']}-{model['k']} ReLU net, {on_what} (n = {summary['data']['n']})",
                 rows, METHODS, True)
    packaged = summary.get("packaged_sdp_nn")
    if packaged is not None:
        methods = list(packaged["methods"])
        full = packaged["full_test_set"]
        print_errors(out, f"the packaged SDP-NN (784-500-10 ReLU, trained with the paper's recipe at eps 0.1), same "
                           f"{packaged['n']} images", [{"eps": packaged["eps"], "clean_error": packaged["clean_error"],
                                                        "pgd_error": packaged["pgd_error"],
                                                        "certified_error": {m: packaged["methods"][m]["certified_error"]
                                                                            for m in methods}}], methods, True)
        out.print(f"(on all {full['n']} MNIST test images, when it was packaged: clean {pct(full['clean_error'])}%, "
                  f"PGD {pct(full['attack_errors']['pgd'])}%, SDP-certified {pct(full['certified_error']['sdp'])}%; "
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
        where = [(f"eps {r['eps']:g}", m, entry) for r in summary["results"] for m, entry in r["methods"].items()]
        if packaged is not None:
            where += [(f"packaged SDP-NN, eps {packaged['eps']:g}", m, entry)
                      for m, entry in packaged["methods"].items()]
        fail_unsound(out, err, broken, "PGD", where)
    steps = summary["pgd"]["steps"]
    nets = "both nets" if packaged is not None else "the demo net"
    out.print(f"0 certified points broken by PGD ({steps} steps, every test image, every eps and method, {nets})",
              highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import TrainConfig, train

    out, err = consoles()
    config = TrainConfig(objective=args.objective, hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, lr_decay_every=args.lr_decay_every, seed=args.seed, eps_train=args.eps_train,
                         sdp_lambda=args.sdp_lambda, sdp_loss_scale=args.sdp_loss_scale,
                         sdp_hinge=args.sdp_hinge,
                         weight_refresh_every=args.weight_refresh_every, at_eps=args.at_eps, at_step=args.at_step,
                         at_steps=args.at_steps, data=args.data, limit=args.limit, test_limit=args.test_limit,
                         out_dir=args.out, resume=args.resume, threads=args.threads, eig_iters=args.eig_iters,
                         lp_eps_ramp_epochs=args.lp_eps_ramp_epochs, snapshot_every=args.snapshot_every,
                         device=args.device, eval_eps=args.eval_eps,
                         input_domain=None if args.input_domain is None else list(args.input_domain),
                         cert_warmup_epochs=args.cert_warmup_epochs, cert_ramp_epochs=args.cert_ramp_epochs,
                         cert_kappa_start=args.cert_kappa_start, cert_kappa_end=args.cert_kappa_end,
                         cert_lower_slopes=args.cert_lower_slopes, cert_interval_weight=args.cert_interval_weight,
                         cert_pgd_weight=args.cert_pgd_weight, cert_pgd_steps=args.cert_pgd_steps,
                         cert_sdp_lambda=args.cert_sdp_lambda)
    if args.data is None:
        err.print("note: no --data: training on the packaged MNIST sample (2000 train / 1000 test images)",
                  highlight=False, soft_wrap=True, markup=False)
    elif Path(args.data).expanduser().is_file():
        err.print(f"note: {args.data} is one set of examples: the per-epoch test error and certificates are measured "
                  f"on the training data itself (give a folder with train and test IDX files for a held-out test set)",
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
        if "lp_box_certified_error" in last:
            summary += (f", LP-certified error over the input box {100 * last['lp_box_certified_error']:.2f}% "
                        f"at eps {last['eval_eps']:g}")
        if "dual_certified_error" in last:
            summary += (f", dual-certificate certified error {100 * last['dual_certified_error']:.2f}% "
                        f"at eps {last['eps_train']:g}")
        out.print(summary + f" ({time.perf_counter() - t0:.1f} s)", highlight=False, soft_wrap=True, markup=False)
    paths = result["paths"]
    out.print(f"wrote {paths['model']}, {paths['log_json']}, {paths['log_csv']}, {paths['checkpoint']}",
              highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..experiments.reproduce import reproduce

    out, err = consoles()
    folder, _ = resolve_mnist_folder(args.data)
    load_mnist("test", folder=folder, limit=1)  # a clear error now if MNIST is missing or corrupt, not after training
    command = "sdpcert reproduce" + (" --quick" if args.quick else "")
    result = reproduce(args.out, str(folder), quick=args.quick, only=args.only, progress=not args.no_progress,
                       log=lambda line: out.print(line, highlight=False, soft_wrap=True, markup=False),
                       command=command)
    out.print(f"done in {result['seconds'] / 60:.1f} min: {Path(args.out) / 'REPORT.md'}", highlight=False,
              soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_export_vnnlib(args: argparse.Namespace) -> int:
    from .._checks import check_input_domain
    from ..vnnlib import format_number, write_vnnlib

    out, err = consoles()
    eps_values = [check_eps(e) for e in args.eps]
    check_limit(args, "export")
    net, data = load_model_and_data(args, err)
    indices = list(range(data.n)) if args.indices is None else args.indices
    beyond = [i for i in indices if i >= data.n]
    if beyond:
        raise SdpcertError(f"--indices {beyond[0]}: the data ({data_source(data)}) has {data.n} examples, "
                           f"numbered 0..{data.n - 1}")
    X, y = data.X[indices], data.y[indices]
    finite_logits(net, X)
    args.input_domain = resolve_input_domain(args.input_domain, data.X)
    domain = check_input_domain(args.input_domain, net.d)
    if domain is not None:
        outside = (X < domain[0]) | (X > domain[1])
        if outside.any():
            row, col = (int(v) for v in np.argwhere(outside)[0])
            raise SdpcertError(f"--input-domain {args.input_domain[0]:g},{args.input_domain[1]:g}: example "
                               f"{indices[row]} has input {col} = {float(X[row, col])!r} outside it; the examples must "
                               f"lie inside the domain (or use --input-domain none)")
    onnx_model = net.to_onnx() if args.onnx else None  # built (and the onnx package found) before anything is written
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise SdpcertError(f"--out {folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, x, label in zip(indices, X, y):
        for eps in eps_values:
            path = folder / f"prop_{index}_eps_{format_number(eps)}.vnnlib"
            provenance = (f"example {index} of {data.name}{' (' + data.split + ')' if data.split else ''}, "
                          f"sha256 {data.sha256}\nmodel {args.model}: {net!r}, fingerprint {net.fingerprint()}")
            written.append(write_vnnlib(path, x, label, eps, net.k, input_domain=domain, comment=provenance))
    if onnx_model is not None:
        (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    wrong = np.flatnonzero(net.predict(X) != y)
    if wrong.size:
        shown = ", ".join(str(indices[i]) for i in wrong[:10]) + (", ..." if wrong.size > 10 else "")
        err.print(f"note: the model misclassifies {wrong.size} of these examples ({shown}): their properties are sat "
                  f"at every eps", highlight=False, soft_wrap=True, markup=False)
    where = "the whole ball" if domain is None else f"the ball clipped to [{args.input_domain[0]:g}, " \
                                                    f"{args.input_domain[1]:g}]"
    out.print(f"wrote {len(written)} VNNLIB properties ({len(indices)} examples of {data_source(data)} x "
              f"{len(eps_values)} eps; {where}) to {folder}" + (", and model.onnx" if args.onnx else ""),
              highlight=False, soft_wrap=True, markup=False)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from ..vnnlib import read_vnnlib, verify_property, write_counterexample

    _, err = consoles()

    def note(line: str) -> None:
        err.print(line, highlight=False, soft_wrap=True, markup=False)

    counterexample = Path(args.counterexample) if args.counterexample else None
    if counterexample is not None and not counterexample.parent.is_dir():
        raise SdpcertError(f"cannot write --counterexample {counterexample}: folder {counterexample.parent} does not "
                           f"exist")
    net = load_model_arg(args.model)
    prop = read_vnnlib(args.property)
    note(f"model {args.model}: {net!r}; property {args.property}: label {prop.y} of {prop.k}, a box in "
         f"{prop.d} inputs of half-width up to {float(np.max(prop.hi - prop.lo)) / 2:g}")
    result = verify_property(net, prop, methods=args.methods, timeout=args.timeout, steps=args.steps,
                             restarts=args.restarts, seed=args.seed, log=note)
    if result.answer == "sat":
        note(f"counterexample: class {result.worst_class} scores {result.margin!r} >= 0 above class {prop.y} (float64 "
             f"numpy forward, inside the box)")
        if counterexample is not None:
            write_counterexample(counterexample, result.x, result.logits)
            note(f"wrote {counterexample}")
    elif result.answer == "unsat":
        note(f"unsat: proven by {result.method} for every input in the box")
    else:
        note(f"unknown: {result.reason}")
    print(result.answer, flush=True)  # stdout holds the answer and nothing else
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- shared steps
def domain_of(domain: Any, d: int) -> Any:
    """A ``--input-domain`` value as the (lo, hi) arrays a Certifier records (None stays None)."""
    return None if domain is None else (np.full(d, float(domain[0])), np.full(d, float(domain[1])))


def _certify_timed(certifier: Certifier, X: Any, y: Any, eps_values: list, methods: list, err: Any,
                   progress: bool = True) -> tuple[dict, Any, float, float]:
    """``(results, pairs, pair_seconds, certify_seconds)``: the pair SDPs (when ``methods`` has sdp, with a bar)
    then ``certify_grid`` (with a bar per per-example stage: examples done, certified so far; shown only on a
    terminal, and not with ``progress=False``); ``pairs`` is None when no pair SDP was solved (``best`` solves them
    only if some example needs the sdp stage)."""
    pairs = None
    t_pairs = 0.0
    if "sdp" in methods:
        t0 = time.perf_counter()
        with Bars(err) as bars:
            pairs = certifier.pair_bounds(progress=lambda done, total: bars.update("pair SDPs", done, total))
        t_pairs = time.perf_counter() - t0
    solved_before = certifier.solved_pair_bounds() is not None
    t0 = time.perf_counter()
    with Bars(err, enabled=progress and err.is_terminal) as bars:
        def report(stage: str, done: int, total: int, certified: Optional[int]) -> None:
            bars.update(stage, done, total, note=None if certified is None else f"{certified} certified")

        results = certifier.certify_grid(X, y, eps_values, methods, progress=report if bars.enabled else None)
    t_certify = time.perf_counter() - t0
    if pairs is None and "best" in methods:
        pairs = certifier.solved_pair_bounds()
        if pairs is not None and not solved_before:
            t_pairs = pairs.seconds  # solved by best's sdp stage, inside certify_grid (included in t_certify)
    return results, pairs, t_pairs, t_certify


def _run_attacks(net: Any, X: Any, y: Any, eps_values: list, attacks: list, settings: dict,
                 err: Any) -> tuple[dict, dict]:
    """``(fooled {(eps, attack): flags}, seconds {attack: total})``, one bar per attack."""
    options = {"fgsm": {}, "pgd": dict(settings), "cw": dict(settings)}
    fooled: dict[tuple[float, str], np.ndarray] = {}
    t_attack = {a: 0.0 for a in attacks}
    with Bars(err) as bars:
        for a in attacks:
            bars.update(ATTACK_NAMES[a], 0, len(eps_values))
        for i, eps in enumerate(eps_values):
            for a in attacks:
                t0 = time.perf_counter()
                fooled[(eps, a)] = ATTACKS[a](net, X, y, eps, **options[a])[1]
                t_attack[a] += time.perf_counter() - t0
                bars.update(ATTACK_NAMES[a], i + 1, len(eps_values))
    return fooled, t_attack


def _attack_row(eps: float, clean_wrong: np.ndarray, fooled: dict, certs: dict) -> dict:
    """One radius of ``sdpcert attack``: the attacks' errors and, per certification method in ``certs``, the
    certified points they broke (the first 100 listed)."""
    any_fooled = np.logical_or.reduce(list(fooled.values()))
    row: dict[str, Any] = {
        "eps": eps,
        "n": int(len(clean_wrong)),
        "clean_error": float(clean_wrong.mean()),
        "clean_wrong": int(clean_wrong.sum()),
        "attacks": {a: {"error": float(f.mean()), "fooled": int(f.sum())} for a, f in fooled.items()},
        "any_error": float(any_fooled.mean()),
        "any_fooled": int(any_fooled.sum()),
    }
    if certs:
        row["certified"] = {m: soundness_entry(result, any_fooled, by_attack=fooled, max_indices=100)
                            for m, result in certs.items()}
    return row


#: command name -> its function (argparse.Namespace -> exit code).
COMMANDS = {"certify": cmd_certify, "attack": cmd_attack, "demo": cmd_demo, "train": cmd_train,
            "export-vnnlib": cmd_export_vnnlib, "verify": cmd_verify, "reproduce": cmd_reproduce}
