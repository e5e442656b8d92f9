"""Measurements behind the paper's figures, as functions that return rows (and write CSV / PNG when asked).

* :func:`error_vs_eps` -- Fig. 3b: for one network and a grid of radii, the error under FGSM, PGD and CW (lower
  bounds on the robust error) and the certified error of each certification method (upper bounds), on the same
  points. Every row also counts the certified points that some attack broke (must be 0). Per-example methods can
  also be measured over the ball intersected with an input box (``box_methods``: the set the attacks search, since
  they clip to [0, 1]), next to the same methods over the whole ball.
* :func:`write_csv`, :func:`plot_error_vs_eps` -- the table as CSV and the figure as PNG (matplotlib, imported only
  here).

``python -m sdpcert.experiments fig3b --out DIR`` runs Fig. 3b on the packaged SDP-NN (used by the docs; see
``experiments/__main__.py``).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .._checks import check_eps
from ..attacks import evaluate_attacks
from ..certify import METHOD_TABLE, Certifier, methods_for
from ..errors import SdpcertError
from ..model import TwoLayerNet
from .soundness import count_broken

__all__ = ["error_vs_eps", "write_csv", "read_csv", "plot_error_vs_eps", "plot_networks_vs_eps", "ATTACK_OPTIONS"]

#: Attack settings of the figures: PGD 40 steps (restarts configurable), CW-l_inf 100 steps, FGSM.
ATTACK_OPTIONS = {"pgd": {"steps": 40, "restarts": 1}, "cw": {"steps": 100}}


def error_vs_eps(net: TwoLayerNet, X: Any, y: Any, eps_values: Sequence[float],
                 methods: Optional[Sequence[str]] = None, attacks: Sequence[str] = ("fgsm", "pgd", "cw"),
                 attack_options: Optional[dict] = None, certifier: Optional[Certifier] = None,
                 progress: Optional[Any] = None, box_methods: Sequence[str] = (),
                 box_certifier: Optional[Certifier] = None) -> list[dict]:
    """One row per radius: ``eps``, ``n``, ``clean_error``, ``<attack>_error`` per attack, ``any_attack_error``,
    ``<method>_certified_error`` and ``<method>_broken`` (certified points that some attack fooled; 0 for sound
    certificates) per certification method (default: every method that applies to ``net``), and ``broken``, their
    sum.
    ``box_methods``: per-example methods also certified by ``box_certifier`` (a Certifier of ``net`` with an
    input domain: the ball intersected with that box), as ``<method>_box_certified_error``, ``<method>_box_seconds``
    and ``<method>_box_broken`` (counted in ``broken`` too), against the same attacks.
    ``progress(done, total)`` is called after each radius."""
    eps_values = [check_eps(e) for e in eps_values]
    if not eps_values:
        raise SdpcertError("eps_values must name at least one radius")
    methods = list(methods_for(net) if methods is None else methods)
    box_methods = list(box_methods)
    _check_box(box_methods, box_certifier)
    options = {key: dict(value) for key, value in ATTACK_OPTIONS.items()}
    for key, value in (attack_options or {}).items():
        options.setdefault(key, {}).update(value)
    options = {key: value for key, value in options.items() if key in attacks}
    certifier = certifier if certifier is not None else Certifier(net)
    certs = certifier.certify_grid(X, y, eps_values, methods)
    box_certs = box_certifier.certify_grid(X, y, eps_values, box_methods) if box_methods else {}
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
            row[f"{method}_seconds"] = result.seconds
            row[f"{method}_broken"] = count_broken(result.certified, found["any_fooled"])
        for method in box_methods:
            result = box_certs[(eps, method)]
            row[f"{method}_box_certified_error"] = result.certified_error
            row[f"{method}_box_seconds"] = result.seconds
            row[f"{method}_box_broken"] = count_broken(result.certified, found["any_fooled"])
        row["broken"] = (sum(row[f"{method}_broken"] for method in methods)
                         + sum(row[f"{method}_box_broken"] for method in box_methods))
        row["attack_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(eps_values))
    return rows


def _check_box(box_methods: Sequence[str], box_certifier: Optional[Certifier]) -> None:
    """Box columns need a certifier with an input domain, and methods whose bound uses it (per example): the
    per-model bounds prove the whole ball whatever the domain, so a box column of theirs would only repeat it."""
    if not box_methods:
        return
    if box_certifier is None or box_certifier.input_domain is None:
        raise SdpcertError("box_methods need box_certifier: a Certifier with an input_domain")
    whole_ball = [m for m in box_methods if m not in METHOD_TABLE or not METHOD_TABLE[m].uses_input_domain]
    if whole_ball:
        raise SdpcertError(f"box_methods must be per-example methods (their bounds use the input box); got "
                           f"{', '.join(map(repr, whole_ball))}")


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """``rows`` as CSV at ``path`` (columns: every key of any row, in order of first appearance)."""
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
             "spectral": "spectral bound", "frobenius": "Frobenius bound", "interval": "interval bound",
             "lp-opt": "LP, optimised slopes", "sdp-example": "per-example SDP", "best": "best (cascade)"}
    if "sdp-example" in methods or "lp-opt" in methods:  # per-example methods shown: say which bounds are per model
        names = {**names, "sdp": "SDP certificate (per model)"}
    for attack in attacks:
        ax.plot(eps, [100 * row[f"{attack}_error"] for row in rows], marker="o", label=f"{names[attack]} (attack)")
    for method in methods:
        # best is the per-example minimum, so it lies on one of the other lines: drawn wide and pale underneath
        style = dict(linewidth=5, alpha=0.35, zorder=1, marker=None) if method == "best" else \
            dict(marker="^" if method == "sdp-example" else "s", linestyle="--", zorder=2)
        ax.plot(eps, [100 * row[f"{method}_certified_error"] for row in rows], label=names.get(method, method),
                **style)
    return _save(fig, ax, path, title)


def _save(fig: Any, ax: Any, path: str | Path, title: str) -> Path:
    """The figures' common axes (eps against error %, 0-100) and legend, saved as PNG at ``path``."""
    import matplotlib.pyplot as plt

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


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a CSV written by ``write_csv`` (numbers as floats, ``n`` as int)."""
    with Path(path).open(newline="") as handle:
        return [{k: (int(v) if k == "n" else float(v)) for k, v in row.items()} for row in csv.DictReader(handle)]


def plot_networks_vs_eps(tables: dict[str, Sequence[dict]], path: str | Path, method: str = "best",
                         title: str = "") -> Path:
    """Several networks in one figure: per network, ``method``'s certified error (solid) and PGD's error (dotted,
    a lower bound on the robust error) against eps, from rows of :func:`error_vs_eps`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for index, (name, rows) in enumerate(tables.items()):
        color = f"C{index}"
        eps = [row["eps"] for row in rows]
        ax.plot(eps, [100 * row[f"{method}_certified_error"] for row in rows], marker="s", color=color,
                label=f"{name}: {method} certificate")
        ax.plot(eps, [100 * row["pgd_error"] for row in rows], marker="o", linestyle=":", color=color,
                label=f"{name}: PGD")
    return _save(fig, ax, path, title)
