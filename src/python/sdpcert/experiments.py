"""Measurements behind the paper's figures, as functions that return rows (and write CSV / PNG when asked).

* :func:`error_vs_eps` -- Fig. 3b: for one network and a grid of radii, the error under FGSM, PGD and CW (lower
  bounds on the robust error) and the certified error of each certification method (upper bounds), on the same
  points. Every row also counts the certified points that some attack broke (must be 0).
* :func:`write_csv`, :func:`plot_error_vs_eps` -- the table as CSV and the figure as PNG (matplotlib, imported only
  here).

``python -m sdpcert.experiments fig3b --out DIR`` runs Fig. 3b on the packaged SDP-NN (used by the docs).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any, Optional, Sequence


from .attacks import evaluate_attacks
from .certify import Certifier, check_eps, methods_for
from .errors import SdpcertError
from .network import TwoLayerNet

__all__ = ["error_vs_eps", "write_csv", "plot_error_vs_eps", "ATTACK_OPTIONS"]

#: Attack settings of the figures: PGD 40 steps (restarts configurable), CW-l_inf 100 steps, FGSM.
ATTACK_OPTIONS = {"pgd": {"steps": 40, "restarts": 1}, "cw": {"steps": 100}}


def error_vs_eps(net: TwoLayerNet, X: Any, y: Any, eps_values: Sequence[float],
                 methods: Optional[Sequence[str]] = None, attacks: Sequence[str] = ("fgsm", "pgd", "cw"),
                 attack_options: Optional[dict] = None, certifier: Optional[Certifier] = None,
                 progress: Optional[Any] = None) -> list[dict]:
    """One row per radius: ``eps``, ``n``, ``clean_error``, ``<attack>_error`` per attack, ``any_attack_error``,
    ``<method>_certified_error`` and ``<method>_broken`` (certified points that some attack fooled; 0 for sound
    certificates) per certification method (default: every method that applies to ``net``), and ``broken``, their
    sum.
    ``progress(done, total)`` is called after each radius."""
    eps_values = [check_eps(e) for e in eps_values]
    if not eps_values:
        raise SdpcertError("eps_values must name at least one radius")
    methods = list(methods_for(net) if methods is None else methods)
    options = {key: dict(value) for key, value in ATTACK_OPTIONS.items()}
    for key, value in (attack_options or {}).items():
        options.setdefault(key, {}).update(value)
    options = {key: value for key, value in options.items() if key in attacks}
    certifier = certifier if certifier is not None else Certifier(net)
    certs = certifier.certify_grid(X, y, eps_values, methods)
    rows = []
    for index, eps in enumerate(eps_values):
        t0 = time.perf_counter()
        found = evaluate_attacks(net, X, y, eps, methods=attacks, options=options)
        row: dict[str, Any] = {"eps": eps, "n": found["n"], "clean_error": found["clean_error"]}
        for attack in attacks:
            row[f"{attack}_error"] = found["errors"][attack]
        row["any_attack_error"] = found["error"]
        for method in methods:
            result = certs[(eps, method)]
            row[f"{method}_certified_error"] = result.certified_error
            row[f"{method}_broken"] = int((result.certified & found["any_fooled"]).sum())
        row["broken"] = sum(row[f"{method}_broken"] for method in methods)
        row["attack_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(eps_values))
    return rows


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_error_vs_eps(rows: Sequence[dict], path: str | Path, title: str = "",
                      methods: Sequence[str] = ("sdp",), attacks: Sequence[str] = ("fgsm", "pgd", "cw")) -> Path:
    """Fig. 3b: error (%) against eps, one line per attack (lower bounds) and per certification method (upper)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [row["eps"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    names = {"fgsm": "FGSM", "pgd": "PGD", "cw": "CW-l_inf", "sdp": "SDP certificate", "lp": "LP certificate",
             "spectral": "spectral bound", "frobenius": "Frobenius bound"}
    for attack in attacks:
        ax.plot(eps, [100 * row[f"{attack}_error"] for row in rows], marker="o", label=f"{names[attack]} (attack)")
    for method in methods:
        ax.plot(eps, [100 * row[f"{method}_certified_error"] for row in rows], marker="s", linestyle="--",
                label=names.get(method, method))
    ax.set_xlabel("eps (l_inf)")
    ax.set_ylabel("error %")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _main(argv: Optional[Sequence[str]] = None) -> int:
    from .data import load_mnist
    from .pretrained import load_model

    parser = argparse.ArgumentParser(prog="python -m sdpcert.experiments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    fig = sub.add_parser("fig3b", help="error vs eps of one network: FGSM, PGD, CW and the certificates")
    fig.add_argument("--model", default="sdp-nn", help="model file or packaged name (default sdp-nn)")
    fig.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    fig.add_argument("--limit", type=int, default=None, help="first N test images")
    fig.add_argument("--eps", default="0.01,0.025,0.05,0.075,0.1,0.125,0.15")
    fig.add_argument("--restarts", type=int, default=1, help="PGD restarts")
    fig.add_argument("--out", required=True, help="folder for fig3b.csv and fig3b.png")
    args = parser.parse_args(argv)
    net = load_model(args.model)
    X, y = load_mnist("test", folder=args.data, limit=args.limit)
    rows = error_vs_eps(net, X, y, [float(e) for e in args.eps.split(",")],
                        attack_options={"pgd": {"restarts": args.restarts}},
                        progress=lambda done, total: print(f"eps {done}/{total}", flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "fig3b.csv")
    plot_error_vs_eps(rows, out / "fig3b.png", title=f"{args.model}: attacks vs certificates, MNIST test (n = {len(y)})",
                      methods=[m for m in ("sdp", "lp") if f"{m}_certified_error" in rows[0]])
    for row in rows:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return 0 if all(row["broken"] == 0 for row in rows) else 3


if __name__ == "__main__":
    raise SystemExit(_main())
