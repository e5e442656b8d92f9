"""What the ``sdpcert`` commands print and write: rich consoles, progress bars, the error tables, strict JSON
reports, and the red report of a broken certificate. Tables go to stdout; bars, notes and errors to stderr.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, NoReturn, Optional, Sequence

from ..errors import UnsoundCertificateError

__all__ = ["consoles", "Bars", "domain_text", "pct", "error_table", "print_errors", "print_attack_table", "ATTACK_NAMES",
           "model_info", "strict_json", "write_json", "fail_unsound"]


def consoles() -> tuple[Any, Any]:
    from rich.console import Console

    # Created per call so that they write to the current sys.stdout / sys.stderr (pytest capture, redirects).
    return Console(file=sys.stdout), Console(file=sys.stderr)


class Bars:
    """rich progress bars keyed by stage name; ``update(stage, done, total)`` matches the callbacks' signature
    (``note``: text shown after the stage's name, e.g. "123 certified"). With ``enabled=False`` nothing is shown."""

    def __init__(self, console: Any, enabled: bool = True) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console)
        self.tasks: dict[str, Any] = {}
        self._started: dict[str, float] = {}

    def __enter__(self) -> "Bars":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def update(self, stage: str, done: int, total: int, note: Optional[str] = None) -> None:
        if not self.enabled:
            return
        import time

        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, rate="")
            self._started[stage] = time.perf_counter()
        elapsed = time.perf_counter() - self._started[stage]
        rate = f"{done / elapsed:.0f}/s" if note is not None and done and elapsed >= 0.5 else ""
        description = stage if note is None else f"{stage} ({note})"
        self.progress.update(self.tasks[stage], completed=done, total=total, description=description, rate=rate)


def domain_text(domain: Any, methods: Any = None) -> str:
    """How a report names the set the certificates are about (for ``methods``, default every method)."""
    if domain is None:
        return "certified set: the whole l_inf ball"
    lo, hi = domain
    if len(set(lo.tolist())) == 1 and len(set(hi.tolist())) == 1:
        box = f"[{lo[0]:g}, {hi[0]:g}]"
    else:
        box = "[lo, hi] (per coordinate)"
    from ..certify import METHOD_TABLE

    names = [name for name in METHOD_TABLE if methods is None or name in methods]
    boxed = ", ".join(name for name in names if METHOD_TABLE[name].uses_input_domain)
    whole = ", ".join(name for name in names if not METHOD_TABLE[name].uses_input_domain)
    text = "certified set: the l_inf ball intersected with the input domain " + box
    if boxed and whole:
        return f"{text} ({boxed}); {whole}: the whole ball"
    return text if boxed else "certified set: the whole l_inf ball (the input domain " + box + " is not used by " + \
        whole + ")"


def pct(value: float) -> str:
    return f"{100.0 * value:.1f}"


def error_table(attack_names: Sequence[str], methods: Sequence[str], rows: Sequence[Sequence[str]]) -> Any:
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


def print_errors(console: Any, title: str, rows: list[dict], methods: Sequence[str], with_pgd: bool) -> None:
    """Title line, table, legend. rows: {"eps", "clean_error", ["pgd_error"], "certified_error": {method: value}}."""
    legend = "clean: misclassified; certified error: not proven robust (an upper bound on the robust error)"
    if with_pgd:
        legend += "; PGD: fooled by the attack (a lower bound)"
    table = error_table(["PGD"] if with_pgd else [], methods, [
        [f"{row['eps']:g}", pct(row["clean_error"]), *([pct(row["pgd_error"])] if with_pgd else []),
         *(pct(row["certified_error"][m]) for m in methods)] for row in rows])
    console.print(title, highlight=False, soft_wrap=True, markup=False)
    console.print(table)
    console.print(legend, highlight=False, soft_wrap=True, markup=False)


ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "cw": "CW"}


def print_attack_table(console: Any, title: str, rows: list[dict], attacks: Sequence[str],
                        methods: Sequence[str]) -> None:
    """Title line, table, legend. rows: {"eps", "clean_error", "attacks": {a: {"error"}}, "any_error",
    ["certified": {method: {"certified_error"}}]}; certified columns only for the given methods."""
    names = [ATTACK_NAMES[a] for a in attacks]
    legend = (f"clean: misclassified; {'/'.join(names)}: misclassified after the attack (a lower bound on the robust "
              f"error)")
    with_any = len(attacks) > 1
    if with_any:
        legend += "; any: fooled by at least one attack"
    if methods:
        legend += "; certified error: not proven robust (an upper bound on the robust error)"
    table = error_table(names + (["any"] if with_any else []), methods, [
        [f"{row['eps']:g}", pct(row["clean_error"]), *(pct(row["attacks"][a]["error"]) for a in attacks),
         *([pct(row["any_error"])] if with_any else []),
         *(pct(row["certified"][m]["certified_error"]) for m in methods)] for row in rows])
    console.print(title, highlight=False, soft_wrap=True, markup=False)
    width = console.width
    try:  # natural width (up to 160): no truncated headers with all columns on an 80-column terminal or pipe
        console.width = max(width, 160)
        console.print(table)
    finally:
        console.width = width
    console.print(legend, highlight=False, soft_wrap=True, markup=False)


def model_info(net: Any, path: Any) -> dict:
    """The ``model`` entry of a JSON report: where it came from, its fingerprint and shape."""
    return {"path": str(path), "fingerprint": net.fingerprint(), "d": net.d, "m": net.m, "k": net.k,
            "activation": net.activation}


def strict_json(value: Any, where: str, non_finite: list[str]) -> Any:
    """``value`` with every number that is not finite (inf, -inf, NaN) replaced by None; their locations (e.g.
    ``pair_sdp.upper[3][7]: inf``) are appended to ``non_finite``. Strict JSON has no such numbers."""
    if isinstance(value, dict):
        return {key: strict_json(item, f"{where}.{key}" if where else str(key), non_finite)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item, f"{where}[{i}]", non_finite) for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        non_finite.append(f"{where}: {value}")
        return None
    return value


def write_json(path: Path, report: dict) -> None:
    """Write ``report`` as strict JSON; a number that is not finite becomes null, listed under "non_finite"."""
    non_finite: list[str] = []
    strict = strict_json(report, "", non_finite)
    if non_finite:
        strict["non_finite"] = {"note": "null stands for a number that is not finite (inf: no finite bound was "
                                        "proven; nan: undefined); each location and its value:",
                                "values": non_finite}
    path.write_text(json.dumps(strict, indent=2, allow_nan=False) + "\n")


def fail_unsound(out: Any, err: Any, total: int, attacks: str, entries: Iterable[tuple[str, str, dict]]) -> NoReturn:
    """A certificate is wrong: print each ``(where, method, entry)`` whose ``entry["broken"]`` is not 0 (an entry of
    :func:`sdpcert.experiments.soundness_entry`) in red on stderr and the total on stdout, then raise
    ``UnsoundCertificateError`` (exit code 3)."""
    for where, method, entry in entries:
        if entry["broken"]:
            err.print(f"[bold red]UNSOUND: {where}, {method}: {entry['broken']} certified point(s) broken "
                      f"by {attacks}, indices {entry['broken_indices'][:20]}[/bold red]")
    out.print(f"[bold red]{total} certified points broken by {attacks}: a certificate is wrong[/bold red]")
    raise UnsoundCertificateError(f"{total} certified point(s) broken by {attacks} (listed above): a certificate "
                                  f"is unsound")
