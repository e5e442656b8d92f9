"""Stage 1 of ``sdpcert reproduce``: train each network, or reuse it.

A network lives in ``OUT/networks/<key>-<hash>/`` (the files of :func:`sdpcert.training.train`: model.npz, the
per-epoch log, checkpoint.pt and the snapshots). ``trained.json`` there marks a finished run; a folder with a
checkpoint but no marker was interrupted and resumes from its last epoch (the same weights as an uninterrupted
run, see :mod:`sdpcert.training`). A run trained elsewhere by :func:`sdpcert.training.train` with the same settings
(so the same hash) can be adopted: its files in the folder and a ``trained.json`` of this form whose
``adopted_from`` says where it came from, which the report then states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from ...model import TwoLayerNet
from ...training import CHECKPOINT_NAME, LOG_JSON_NAME, MODEL_NAME, train
from .plan import NetworkSpec, config_hash

__all__ = ["run_folder", "train_or_reuse", "load_trained", "DONE_NAME"]

DONE_NAME = "trained.json"


def run_folder(out: Path, spec: NetworkSpec, data: Optional[str]) -> Path:
    return Path(out) / "networks" / f"{spec.key}-{config_hash(spec, data)}"


def train_or_reuse(out: Path, spec: NetworkSpec, data: Optional[str], progress: bool = True,
                   log: Optional[Callable[[str], None]] = None) -> dict:
    """Train ``spec`` into its run folder unless a finished run is there. Returns the ``trained.json`` record:
    key, name, hash, config, epochs, train_seconds (summed over all sessions of the run), reused (bool)."""
    folder = run_folder(out, spec, data)
    done = folder / DONE_NAME
    if done.is_file():
        record = json.loads(done.read_text())
        record["reused"] = True
        return record
    resume = (folder / CHECKPOINT_NAME).is_file()
    if log is not None:
        log(f"{spec.name}: {'resuming' if resume else 'training'} in {folder.name} ({spec.config['epochs']} epochs)")
    train(spec.train_config(data, str(folder), resume=resume), progress=progress, log=log)
    history = json.loads((folder / LOG_JSON_NAME).read_text())["epochs"]
    record = {"key": spec.key, "name": spec.name, "hash": config_hash(spec, data), "config": spec.config,
              "schedule": spec.why, "epochs": len(history),
              "train_seconds": float(sum(row["seconds"] for row in history)),
              "final_clean_error": float(history[-1]["clean_error"])}
    done.write_text(json.dumps(record, indent=1))
    record["reused"] = False
    return record


def load_trained(out: Path, spec: NetworkSpec, data: Optional[str]) -> TwoLayerNet:
    return TwoLayerNet.load(run_folder(out, spec, data) / MODEL_NAME)
