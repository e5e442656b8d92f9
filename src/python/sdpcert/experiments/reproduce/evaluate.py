"""Stage 2 of ``sdpcert reproduce``: measure one trained network.

For the final network at eps = 0.1 (and, for SDP-NN, every radius of Fig. 3b): the certified error under each
upper bound (exact pair SDPs, spectral, Frobenius, the LP of Wong & Kolter) and the error under FGSM, PGD and
CW-l_inf (lower bounds), on the same test images, with the count of certified points some attack broke (must be
0: the run stops with an error otherwise). A network with ``box_methods`` (CROWN-box-NN) is also certified by
those per-example methods over the ball intersected with the pixel box (``<method>_box_certified_error``), against
the same attacks, which stay in that box. Then:

* ``schedule_check``: PGD error of the half-way snapshot against the final network's on the first test images;
* ``dual_vs_exact`` (SDP-NN, Fig. 4b): for every snapshot, the dual certificate logged during training (proven,
  from the training-time c_ij) against the exact pair SDPs' certificate of the same weights;
* ``packaged_match`` (networks with a packaged twin): the largest weight difference from the packaged model.

Written to ``OUT/results/<key>.json``; reused while the network's hash and the evaluation settings are unchanged.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ...attacks import evaluate_attacks
from ...certify import METHODS, Certifier
from ...errors import UnsoundCertificateError
from ...model import TwoLayerNet
from ...training import LOG_JSON_NAME, MODEL_NAME, load_split
from ..error_vs_eps import error_vs_eps
from .plan import INPUT_BOX, EvalSettings, NetworkSpec
from .training import run_folder

__all__ = ["evaluate_network", "result_path"]

_SNAPSHOT = re.compile(r"model_epoch(\d+)\.npz$")


def result_path(out: Path, spec: NetworkSpec) -> Path:
    return Path(out) / "results" / f"{spec.key}.json"


def _attack_options(settings: EvalSettings) -> dict:
    return {"pgd": {"steps": settings.pgd_steps, "restarts": settings.pgd_restarts}, "cw": {"steps": settings.cw_steps}}


def _snapshots(folder: Path) -> dict[int, Path]:
    found = {}
    for path in folder.glob("model_epoch*.npz"):
        match = _SNAPSHOT.search(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _schedule_check(folder: Path, net: TwoLayerNet, epochs: int, X: np.ndarray, y: np.ndarray,
                    settings: EvalSettings) -> Optional[dict]:
    """PGD error at eps of the snapshot nearest half-way (if any) and of the final net, on the same images."""
    snaps = {e: p for e, p in _snapshots(folder).items() if e < epochs}
    if not snaps:
        return None
    half = min(snaps, key=lambda e: abs(e - epochs / 2))
    n = min(settings.schedule_check_n, len(y))
    options = {"pgd": _attack_options(settings)["pgd"]}
    at_half = evaluate_attacks(TwoLayerNet.load(snaps[half]), X[:n], y[:n], settings.eps, ("pgd",), options)
    at_end = evaluate_attacks(net, X[:n], y[:n], settings.eps, ("pgd",), options)
    return {"n": n, "eps": settings.eps, "epoch_half": half, "epochs": epochs,
            "clean_error_half": at_half["clean_error"], "clean_error_final": at_end["clean_error"],
            "pgd_error_half": at_half["errors"]["pgd"], "pgd_error_final": at_end["errors"]["pgd"]}


def _dual_vs_exact(folder: Path, history: list[dict], X: np.ndarray, y: np.ndarray, eps: float,
                   log: Optional[Callable[[str], None]]) -> list[dict]:
    """Fig. 4b: per snapshot epoch, the logged dual certificate against the exact pair SDPs' certificate."""
    by_epoch = {row["epoch"]: row for row in history}
    rows = []
    for epoch, path in _snapshots(folder).items():
        t0 = time.perf_counter()
        certifier = Certifier(TwoLayerNet.load(path))
        exact = certifier.certify(X, y, eps, "sdp")
        logged = by_epoch.get(epoch, {})
        rows.append({"epoch": epoch, "eps": eps, "n": int(len(y)),
                     "dual_certified_error": logged.get("dual_certified_error"),
                     "exact_sdp_certified_error": exact.certified_error, "clean_error": exact.clean_error,
                     "dual_S_mean": logged.get("dual_S_mean"),
                     "exact_S_mean": float(certifier.pair_bounds().upper[np.triu_indices(10, 1)].mean()),
                     "seconds": time.perf_counter() - t0})
        if log is not None:
            log(f"  Fig. 4b epoch {epoch}: dual certificate {100 * (rows[-1]['dual_certified_error'] or float('nan')):.2f}%"
                f", exact SDP {100 * exact.certified_error:.2f}%")
    return rows


def _packaged_match(net: TwoLayerNet, name: str) -> Optional[dict]:
    """How far the reproduced network is from the packaged one ``name`` (trained from the same settings and seed):
    the largest absolute difference over all weights and biases (0.0: bit-identical training)."""
    from ...model import available, load_pretrained

    if name not in available():
        return None
    packaged = load_pretrained(name)
    if (packaged.W.shape, packaged.V.shape) != (net.W.shape, net.V.shape):
        return {"name": name, "max_abs_difference": None}
    diff = max(float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
               for a, b in ((packaged.W, net.W), (packaged.b, net.b), (packaged.V, net.V), (packaged.b2, net.b2)))
    return {"name": name, "max_abs_difference": diff}


def evaluate_network(out: Path, spec: NetworkSpec, data: Optional[str], settings: EvalSettings,
                     trained: dict, log: Optional[Callable[[str], None]] = None) -> dict:
    """Measure the trained network of ``spec`` (see the module docstring); returns and writes the result record."""
    path = result_path(out, spec)
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("hash") == trained["hash"] and record.get("settings") == settings.to_dict():
            record["reused"] = True
            return record
    t_start = time.perf_counter()
    folder = run_folder(out, spec, data)
    net = TwoLayerNet.load(folder / MODEL_NAME)
    X, y = load_split(data, "test", settings.test_limit)
    history = json.loads((folder / LOG_JSON_NAME).read_text())["epochs"]
    say = log if log is not None else (lambda line: None)
    certifier = Certifier(net)
    pairs = certifier.pair_bounds()
    radii = sorted(set(settings.eps_curve) | {settings.eps}) if spec.key == "sdp" else [settings.eps]
    say(f"  45 pair SDPs solved in {pairs.seconds:.1f} s; certifying {len(y)} test images (SDP, spectral, Frobenius, "
        f"LP) and attacking them (FGSM, PGD {settings.pgd_steps}x{settings.pgd_restarts}, CW {settings.cw_steps}) "
        f"at eps {', '.join(f'{e:g}' for e in radii)}")
    if spec.box_methods:
        say(f"  and over the ball intersected with [{INPUT_BOX[0]:g}, {INPUT_BOX[1]:g}]: {', '.join(spec.box_methods)}")
    box_certifier = Certifier(net, input_domain=INPUT_BOX) if spec.box_methods else None
    rows = error_vs_eps(net, X, y, radii, methods=METHODS, attack_options=_attack_options(settings),
                        certifier=certifier, progress=lambda done, total: say(f"  radius {done}/{total} done"),
                        box_methods=spec.box_methods, box_certifier=box_certifier)
    broken = sum(row["broken"] for row in rows)
    if broken:
        raise UnsoundCertificateError(f"{spec.name}: {broken} certified points were broken by an attack: a "
                                      f"certificate is unsound; results not written")
    main = next(row for row in rows if row["eps"] == settings.eps)
    if log is not None:
        log(f"  {spec.name} at eps {settings.eps:g}: clean {100 * main['clean_error']:.2f}%, PGD "
            f"{100 * main['pgd_error']:.2f}%, SDP-certified {100 * main['sdp_certified_error']:.2f}%, LP-certified "
            f"{100 * main['lp_certified_error']:.2f}%"
            + "".join(f", {m} over the box {100 * main[f'{m}_box_certified_error']:.2f}%" for m in spec.box_methods)
            + ", 0 certified points broken")
    upper, lower = pairs.upper[np.triu_indices(net.k, 1)], pairs.lower[np.triu_indices(net.k, 1)]
    record = {"key": spec.key, "name": spec.name, "hash": trained["hash"], "settings": settings.to_dict(),
              "trained": {k: v for k, v in trained.items() if k != "reused"},
              "eval": main, "eps_curve": rows if spec.key == "sdp" else [],
              "box_methods": list(spec.box_methods), "input_box": list(INPUT_BOX) if spec.box_methods else None,
              "pair_sdp": {"seconds": pairs.seconds, "max_relative_gap": float(np.max((upper - lower) / upper)),
                           "mean_upper": float(upper.mean())},
              "schedule_check": _schedule_check(folder, net, trained["epochs"], X, y, settings),
              "dual_vs_exact": _dual_vs_exact(folder, history, X, y, settings.eps, log) if spec.key == "sdp" else [],
              "packaged_match": _packaged_match(net, spec.packaged) if spec.packaged else None,
              "history": history}
    record["eval_seconds"] = time.perf_counter() - t_start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    record["reused"] = False
    return record
