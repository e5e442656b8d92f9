"""What ``sdpcert reproduce`` runs: the paper's networks (§6, docs/design.md §6) as training configs, the evaluation
settings, the paper's reported numbers (labelled as the paper's wherever they are shown), and the content hash
under which a trained network is reused.

Schedules. The paper gives one: SDP-NN (Adam, lr 1e-3 -> 1e-5, x0.1 every 30 epochs, so 90 epochs), used here for
both SDP variants. It states no epoch count for NT/Fro/Spe/AT-NN; ours are chosen so the full run fits 90 minutes
on a 2-core machine, and every network keeps a half-way snapshot whose PGD error the report prints next to the
final one (``schedule_check``): if the two agree, a longer schedule would not change the result. LP-NN is
Wong & Kolter's training with their radius ramp (batch 50), 20 epochs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from ... import __version__
from ...training import OBJECTIVES, TrainConfig

__all__ = ["NetworkSpec", "networks", "PAPER", "EVAL", "config_hash", "NETWORK_KEYS"]

#: The seven networks, one per training objective (their keys are the objectives' names).
NETWORK_KEYS = OBJECTIVES


@dataclass(frozen=True)
class NetworkSpec:
    key: str  # file-name stem: nt, fro, ...
    name: str  # the paper's name: NT-NN, ...
    config: dict  # TrainConfig fields (no data / out_dir / resume: those are per run)
    why: str = ""  # one line on the schedule

    def train_config(self, data: str | None, out_dir: str, resume: bool = False) -> TrainConfig:
        return TrainConfig(**self.config, data=data, out_dir=out_dir, resume=resume)


def _spec(key: str, name: str, why: str = "quick: a pipeline check", **config: Any) -> NetworkSpec:
    return NetworkSpec(key=key, name=name, config=config, why=why)


def networks(quick: bool = False) -> dict[str, NetworkSpec]:
    """The seven networks, in training order (the paper's first; the cheap ones first in --quick)."""
    if quick:  # a few epochs on 2,000 training / 500 test images: checks the pipeline, not the paper's numbers
        small = dict(limit=2000, test_limit=500)
        specs = [
            _spec("nt", "NT-NN", objective="nt", epochs=2, lr_decay_every=30, snapshot_every=1, threads=2, **small),
            _spec("fro", "Fro-NN", objective="fro", epochs=2, lr_decay_every=30, snapshot_every=1, threads=2, **small),
            _spec("spe", "Spe-NN", objective="spe", epochs=2, lr_decay_every=30, snapshot_every=1, threads=2, **small),
            _spec("at", "AT-NN", objective="at", epochs=2, lr_decay_every=30, at_steps=10, snapshot_every=1,
                  threads=2, **small),
            _spec("sdp", "SDP-NN", objective="sdp", epochs=12, lr_decay_every=8, snapshot_every=3, **small),
            _spec("sdp-weighted", "SDP-NN weighted", objective="sdp-weighted", epochs=12, lr_decay_every=8,
                  weight_refresh_every=4, snapshot_every=6, **small),
            _spec("lp", "LP-NN", objective="lp", epochs=2, batch_size=50, lr_decay_every=100, lp_eps_ramp_epochs=1,
                  snapshot_every=1, threads=2, **small),
        ]
    else:
        plain = "the paper states no schedule; 20 epochs, lr 1e-3 then 1e-4 after epoch 10"
        specs = [
            _spec("sdp", "SDP-NN", "the paper's: Adam lr 1e-3 -> 1e-5, x0.1 every 30 epochs", objective="sdp",
                  epochs=90, lr_decay_every=30, snapshot_every=5),
            _spec("sdp-weighted", "SDP-NN weighted", "as SDP-NN; pair weights refreshed every 20 epochs (paper)",
                  objective="sdp-weighted", epochs=90, lr_decay_every=30, weight_refresh_every=20, snapshot_every=45),
            _spec("lp", "LP-NN", "Wong & Kolter's radius ramp over 5 epochs, batch 50, lr 1e-3, 20 epochs",
                  objective="lp", epochs=20, batch_size=50, lr_decay_every=100, lp_eps_ramp_epochs=5,
                  snapshot_every=10, threads=2),
            _spec("nt", "NT-NN", plain, objective="nt", epochs=20, lr_decay_every=10, snapshot_every=10, threads=2),
            _spec("fro", "Fro-NN", plain, objective="fro", epochs=20, lr_decay_every=10, snapshot_every=10, threads=2),
            _spec("spe", "Spe-NN", plain, objective="spe", epochs=20, lr_decay_every=10, snapshot_every=10,
                  threads=2),
            _spec("at", "AT-NN", "the paper's PGD (eps 0.3, step 0.1, 40 steps) and weight 0.5; it states no epoch "
                  "count: 20 epochs, lr 1e-3 then 1e-4 after epoch 15 (one epoch costs ~65 s on 2 cores: 40 PGD "
                  "steps per batch)", objective="at", epochs=20, lr_decay_every=15, snapshot_every=10, threads=2),
        ]
    return {spec.key: spec for spec in specs}


@dataclass(frozen=True)
class EvalSettings:
    eps: float = 0.1
    eps_curve: tuple = (0.05, 0.1, 0.15)  # Fig. 3b (SDP-NN)
    pgd_steps: int = 40
    pgd_restarts: int = 5  # paper §6: PGD on the cross-entropy from a random start, 5 restarts
    cw_steps: int = 100
    test_limit: int | None = None  # None: all 10,000 test images
    schedule_check_n: int = 1000  # test images for the half-way snapshot's PGD error

    def to_dict(self) -> dict:  # as stored in the JSON records (lists, not tuples), to compare with them
        return {**asdict(self), "eps_curve": list(self.eps_curve)}


EVAL = {False: EvalSettings(),
        True: EvalSettings(eps_curve=(0.05, 0.1), pgd_restarts=1, cw_steps=30, test_limit=500, schedule_check_n=200)}

#: The paper's reported numbers (Raghunathan et al. 2018, §6 text and Table 1), fractions of the 10,000 test images
#: at eps = 0.1. Figures 2-4 are plots without printed values; only what the text states is here.
PAPER = {
    "sdp": {"clean_error": 0.042, "pgd_error": 0.15, "sdp_certified_error": 0.35, "lp_certified_error": 0.99},
    "lp": {"pgd_error": 0.22, "sdp_certified_error": 0.93, "lp_certified_error": 0.26},
    "at": {"pgd_error": 0.11},
}
PAPER_NOTES = {
    "sdp": "§6.2: clean 4.2%, PGD 16% in the text (15% in Table 1), certified 35%; Table 1: LP bound 99%",
    "lp": "Table 1 (network provided by Wong & Kolter): PGD 22%, SDP bound 93%, LP bound 26%",
    "at": "§6.2 text, citing Fig. 3a: PGD 11%",
}


def config_hash(spec: NetworkSpec, data: str | None) -> str:
    """Content hash of what determines a trained network: every training setting (defaults included), the dataset
    (full MNIST, whose files the loader checks against their published MD5s so the folder's path does not matter,
    or the packaged sample when ``data`` is None) and the package version. A run folder named by it is reused; any
    change to these trains afresh."""
    config = spec.train_config(None, "-").to_dict()
    for key in ("data", "out_dir", "resume"):
        config.pop(key)
    blob = json.dumps({"config": config, "data": "mnist-md5-verified" if data is not None else "packaged-sample",
                       "sdpcert": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
