"""``sdpcert reproduce``: train (or reuse) the paper's seven networks, evaluate each, draw the figures and write
the report. Each stage's output is on disk (see training.py, evaluate.py), so an interrupted run resumes where it
stopped and a network's results can be produced on their own (``networks=``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ...errors import SdpcertError
from .evaluate import evaluate_network, result_path
from .figures import write_figures
from .plan import EVAL, NETWORK_KEYS, config_hash, networks
from .report import write_report
from .training import train_or_reuse

__all__ = ["reproduce"]


def reproduce(out: str | Path, data: Optional[str], quick: bool = False, only: Optional[Sequence[str]] = None,
              progress: bool = True, log: Optional[Callable[[str], None]] = None,
              command: str = "sdpcert reproduce") -> dict:
    """Run the pipeline into ``out``. ``data``: folder with the MNIST IDX files (None: the packaged 2,000 / 1,000
    image sample, only sensible with ``quick``). ``only``: network keys to train and evaluate now (default all);
    the figures and the report use every network evaluated so far in ``out``.

    Returns dict(records={key: evaluation record}, files=[written paths], seconds)."""
    log = log or (lambda line: None)
    specs = networks(quick)
    keys = list(specs) if only is None else list(only)
    unknown = [k for k in keys if k not in specs]
    if unknown:
        raise SdpcertError(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORK_KEYS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = EVAL[quick]
    t0 = time.perf_counter()
    for index, key in enumerate(keys, 1):
        spec = specs[key]
        log(f"[{index}/{len(keys)}] {spec.name}: train")
        trained = train_or_reuse(out, spec, data, progress=progress, log=lambda line: log("  " + line))
        log(f"  {'reused' if trained['reused'] else 'trained'} {spec.name} ({trained['epochs']} epochs, "
            f"{trained['train_seconds'] / 60:.1f} min of training)")
        log(f"[{index}/{len(keys)}] {spec.name}: evaluate")
        record = evaluate_network(out, spec, data, settings, trained, log=log)
        log(f"  {'reused' if record['reused'] else 'evaluated'} {spec.name} ({record['eval_seconds'] / 60:.1f} min)")
    records = {}
    for key, spec in specs.items():
        path = result_path(out, spec)
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("settings") == settings.to_dict() and record.get("hash") == config_hash(spec, data):
                records[key] = record
    if not records:
        raise SdpcertError(f"no network has been evaluated in {out} with these settings yet: nothing to report")
    t1 = time.perf_counter()
    files = write_figures(records, out)
    figure_seconds = time.perf_counter() - t1
    files += write_report(records, out, quick, command, figure_seconds)
    log(f"wrote {len(files)} files to {out} ({', '.join(sorted({p.name for p in files}))})")
    return {"records": records, "files": files, "seconds": time.perf_counter() - t0}
