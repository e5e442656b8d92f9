"""The settings of one training run: :class:`TrainConfig`, and THE list of objectives.

``OBJECTIVES`` names the paper's seven training objectives (§6), which are also the seven networks of
``sdpcert reproduce`` (one network per objective) and the order in which figures and tables list them. Every other
list of them in the package is this one.

The run folder's files (``MODEL_NAME``, ``LOG_JSON_NAME``, ``LOG_CSV_NAME``, ``CHECKPOINT_NAME``) are named here too:
the trainer writes them and ``sdpcert reproduce`` reads them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from .._checks import nonnegative_int, positive_int
from ..errors import SdpcertError

__all__ = ["TrainConfig", "OBJECTIVES", "EXTRA_OBJECTIVES", "TRAIN_OBJECTIVES", "CHECKPOINT_NAME", "MODEL_NAME",
           "LOG_JSON_NAME", "LOG_CSV_NAME", "RESUME_KEYS", "SDP_HINGE_NAMES"]

#: The training objectives, in the order of the paper's figures: naive, Frobenius, spectral, adversarial training,
#: SDP (unweighted, weighted) and the LP of Wong & Kolter. See :mod:`sdpcert.training.objectives`.
OBJECTIVES = ("nt", "fro", "spe", "at", "sdp", "sdp-weighted", "lp")
#: Objectives beyond the paper's: ``sdpcert train`` accepts them, ``sdpcert reproduce`` (one network per entry of
#: ``OBJECTIVES``) does not train them. ``crown-box``: the robust cross-entropy of linear-relaxation bounds over the
#: ball intersected with the input box (:mod:`sdpcert.torch.box_bound`).
EXTRA_OBJECTIVES = ("crown-box",)
#: Every objective ``TrainConfig`` and ``sdpcert train`` accept.
TRAIN_OBJECTIVES = OBJECTIVES + EXTRA_OBJECTIVES
#: The settings only crown-box uses (eval_eps: also lp's logged certificate radius).
CERTIFIED_KEYS = ("cert_warmup_epochs", "cert_ramp_epochs", "cert_kappa_start", "cert_kappa_end", "cert_lower_slopes",
                  "cert_interval_weight", "input_domain", "eval_eps", "cert_pgd_weight", "cert_pgd_steps",
                  "cert_sdp_lambda")
#: Settings left out of ``to_dict`` (so of ``sdpcert reproduce``'s hashes) while at their defaults, for every
#: objective: added after the paper's networks were named, and their defaults are what those networks used.
QUIET_DEFAULT_KEYS = ("sdp_hinge", "cert_pgd_weight", "cert_pgd_steps", "cert_sdp_lambda")
#: The sdp objectives' classification losses (sdpcert.training.objectives.SDP_HINGES): Weston-Watkins, Crammer-Singer.
SDP_HINGE_NAMES = ("ww", "cs")
#: crown-box: the lower-slope rules of the linear relaxation (sdpcert.torch.box_bound.LOWER_SLOPES).
CERT_LOWER_SLOPES = ("adaptive", "chord")
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.npz"
LOG_JSON_NAME = "log.json"
LOG_CSV_NAME = "log.csv"
#: Fields that must agree between a checkpoint and the config that resumes it (epochs, out_dir, resume may change).
RESUME_KEYS = ("objective", "hidden", "batch_size", "lr", "lr_decay_every", "seed", "eps_train", "sdp_lambda",
               "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps", "at_step", "at_steps", "weight_refresh_every",
               "lp_eps_ramp_epochs", "data", "limit", "test_limit") + CERTIFIED_KEYS + QUIET_DEFAULT_KEYS


@dataclass
class TrainConfig:
    """Settings of one training run (paper defaults where the paper gives them; see :mod:`sdpcert.training`)."""

    objective: str = "sdp"
    hidden: int = 500
    epochs: int = 1
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay_every: int = 30  # lr x 0.1 every this many epochs
    seed: int = 0
    eps_train: float = 0.1
    sdp_lambda: float = 0.05
    sdp_loss_scale: float = 10.0  # multiplies the mean hinge (docs/design.md §6: x10 trained, x1 collapsed)
    sdp_hinge: str = "ww"  # sdp objectives: "ww" Weston-Watkins (sum over wrong classes) or "cs" Crammer-Singer (max)
    fro_coef: float = 0.08
    spe_coef: float = 0.09
    at_eps: float = 0.3
    at_step: float = 0.1
    at_steps: int = 40
    weight_refresh_every: int = 20
    lp_eps_ramp_epochs: int = 5  # lp: the radius reaches eps_train after this many epochs
    # crown-box (sdpcert.training.objectives): loss = kappa CE(logits) + (1 - kappa) CE(margin bounds at radius e);
    # e = 0 and kappa = cert_kappa_start for cert_warmup_epochs, then over cert_ramp_epochs e grows linearly to
    # eps_train and kappa moves linearly to cert_kappa_end (per step), both constant after
    cert_warmup_epochs: int = 0  # the ramp starts at radius 0 and kappa_start: its first steps are natural training
    cert_ramp_epochs: int = 8
    cert_kappa_start: float = 1.0
    cert_kappa_end: float = 0.0
    # lower slope on unstable units with v < 0: "chord" (W-K; 0.9 points better `best` than "adaptive" (CROWN) in the
    # A/B of docs/results/crown-box-nn)
    cert_lower_slopes: str = "chord"
    cert_interval_weight: float = 0.0  # weight of the interval (IBP) bound mixed into the margin bounds
    cert_pgd_weight: float = 0.0  # beta in [0, 1]: robust term = (1 - beta) CE(bounds) + beta CE(PGD examples)
    cert_pgd_steps: int = 8  # PGD steps of that mix (step 2.5 radius / steps)
    cert_sdp_lambda: float = 0.0  # weight of the SDP dual penalty added to crown-box's loss (ramped with the radius)
    input_domain: Optional[list] = dataclasses.field(default_factory=lambda: [0.0, 1.0])  # crown-box: [lo, hi] or None
    eval_eps: Optional[float] = None  # radius of the logged LP certificate (lp, crown-box); None: eps_train
    snapshot_every: int = 0  # > 0: also keep out_dir/model_epochNNN.npz every this many epochs (Fig. 4b needs them)
    eig_iters: int = 8  # Lanczos matvecs per pair per step, warm started (sdp objectives)
    data: Optional[str] = None  # a folder of MNIST-format IDX files or an .npz with X, y; None: the packaged sample
    limit: Optional[int] = None  # first N training examples
    test_limit: Optional[int] = None  # first N test examples (clean error and dual certificate)
    out_dir: Optional[str] = None  # model.npz, log.json, log.csv, checkpoint.pt; None: write nothing
    resume: bool = False
    device: str = "cpu"  # torch device of the model and the steps, e.g. "cuda" (the sdp penalty then uses torch's eigh)
    threads: int = 1  # cores to use; the sdp objectives give one of them to the eigen-solve thread (threads_for)

    def __post_init__(self) -> None:
        if self.objective not in TRAIN_OBJECTIVES:
            raise SdpcertError(f"unknown objective {self.objective!r}; choose one of {', '.join(TRAIN_OBJECTIVES)}")
        for name in ("hidden", "epochs", "batch_size", "lr_decay_every", "at_steps", "weight_refresh_every",
                     "threads", "eig_iters", "lp_eps_ramp_epochs", "cert_pgd_steps"):
            positive_int(name, getattr(self, name))
        for name in ("snapshot_every", "cert_warmup_epochs", "cert_ramp_epochs"):
            nonnegative_int(name, getattr(self, name))
        for name in ("limit", "test_limit"):
            positive_int(name, getattr(self, name), optional=True)
        for name in ("lr", "eps_train", "sdp_lambda", "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps",
                     "at_step", "cert_kappa_start", "cert_kappa_end", "cert_interval_weight", "cert_pgd_weight",
                     "cert_sdp_lambda"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SdpcertError(f"{name} must be a number; got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SdpcertError(f"{name} must be finite and >= 0; got {value!r}")
            setattr(self, name, value)
        if self.sdp_hinge not in SDP_HINGE_NAMES:
            raise SdpcertError(f"sdp_hinge must be one of {', '.join(SDP_HINGE_NAMES)}; got {self.sdp_hinge!r}")
        self._check_certified_settings()
        self._check_device()
        if self.lr <= 0:
            raise SdpcertError(f"lr must be > 0; got {self.lr}")
        if self.resume and self.out_dir is None:
            raise SdpcertError("resume needs out_dir (the folder holding checkpoint.pt)")
        if self.data is not None:
            self.data = str(self.data)
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)

    def _check_certified_settings(self) -> None:
        """crown-box's settings (checked for every objective: a config is valid or not whatever it trains)."""
        for name in ("cert_kappa_start", "cert_kappa_end", "cert_interval_weight", "cert_pgd_weight"):
            if getattr(self, name) > 1:
                raise SdpcertError(f"{name} must lie in [0, 1]; got {getattr(self, name)}")
        if self.cert_lower_slopes not in CERT_LOWER_SLOPES:
            raise SdpcertError(f"cert_lower_slopes must be one of {', '.join(CERT_LOWER_SLOPES)}; got "
                               f"{self.cert_lower_slopes!r}")
        if self.input_domain is not None:
            try:
                lo, hi = (float(t) for t in self.input_domain)
            except (TypeError, ValueError):
                raise SdpcertError(f"input_domain must be None or two numbers [lo, hi]; got {self.input_domain!r}") \
                    from None
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
                raise SdpcertError(f"input_domain must be two finite numbers lo < hi; got {self.input_domain!r}")
            self.input_domain = [lo, hi]  # a list, as log.json and the checkpoint store it
        if self.eval_eps is not None:
            try:
                value = float(self.eval_eps)
            except (TypeError, ValueError):
                raise SdpcertError(f"eval_eps must be a number; got {self.eval_eps!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SdpcertError(f"eval_eps must be finite and >= 0; got {self.eval_eps!r}")
            self.eval_eps = value

    @property
    def certificate_eps(self) -> float:
        """The radius of the certificate logged every epoch: eval_eps, or eps_train when it is None."""
        return self.eps_train if self.eval_eps is None else self.eval_eps

    def _check_device(self) -> None:
        """Refuse, before any work starts, a device that torch cannot parse or cannot use on this machine."""
        import torch

        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise SdpcertError(f"device must name a torch device such as 'cpu' or 'cuda'; got {self.device!r}") from exc
        if device.type == "cpu":
            return
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise SdpcertError(f"device {self.device!r}: torch finds no usable CUDA device on this machine "
                                   f"(torch.cuda.is_available() is False); use device 'cpu'")
            count = torch.cuda.device_count()
            if device.index is not None and device.index >= count:
                raise SdpcertError(f"device {self.device!r}: this machine has {count} CUDA device(s), numbered "
                                   f"0..{count - 1}")
            return
        if device.type == "meta":
            raise SdpcertError("device 'meta' holds no values: nothing can be trained on it; use 'cpu' or 'cuda'")
        try:  # any other kind (mps, xpu, ...): one tiny allocation tells whether this torch can use it here
            torch.zeros(1, device=device)
        except Exception as exc:  # torch raises RuntimeError, AssertionError, ... depending on the backend
            detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
            raise SdpcertError(f"device {self.device!r} is not usable by torch on this machine: {detail}") from exc

    @property
    def is_sdp(self) -> bool:
        return self.objective in ("sdp", "sdp-weighted")

    @property
    def has_sdp_penalty(self) -> bool:
        """The run trains SDP dual variables c_ij: the sdp objectives, and crown-box with cert_sdp_lambda > 0."""
        return self.is_sdp or (self.objective == "crown-box" and self.cert_sdp_lambda > 0)

    def to_dict(self) -> dict:
        """Every setting, except that the settings only crown-box uses (``CERTIFIED_KEYS``) are left out of other
        objectives' records while at their defaults: ``sdpcert reproduce`` names its networks by a hash of this
        dict, and the paper's seven must keep the names (and reuse the runs) they had before these settings
        existed. A checkpoint that lacks them was written with the defaults (``Trainer.load_state``)."""
        out = dataclasses.asdict(self)
        fields = {f.name: f for f in dataclasses.fields(self)}
        quiet = QUIET_DEFAULT_KEYS + (CERTIFIED_KEYS if self.objective not in EXTRA_OBJECTIVES else ())
        for key in dict.fromkeys(quiet):  # a key may be in both lists
            field = fields[key]
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            if out[key] == default:
                del out[key]
        return out
