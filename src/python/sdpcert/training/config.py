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

__all__ = ["TrainConfig", "OBJECTIVES", "CHECKPOINT_NAME", "MODEL_NAME", "LOG_JSON_NAME", "LOG_CSV_NAME",
           "RESUME_KEYS"]

#: The training objectives, in the order of the paper's figures: naive, Frobenius, spectral, adversarial training,
#: SDP (unweighted, weighted) and the LP of Wong & Kolter. See :mod:`sdpcert.training.objectives`.
OBJECTIVES = ("nt", "fro", "spe", "at", "sdp", "sdp-weighted", "lp")
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.npz"
LOG_JSON_NAME = "log.json"
LOG_CSV_NAME = "log.csv"
#: Fields that must agree between a checkpoint and the config that resumes it (epochs, out_dir, resume may change).
RESUME_KEYS = ("objective", "hidden", "batch_size", "lr", "lr_decay_every", "seed", "eps_train", "sdp_lambda",
               "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps", "at_step", "at_steps", "weight_refresh_every",
               "lp_eps_ramp_epochs", "data", "limit", "test_limit")


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
    fro_coef: float = 0.08
    spe_coef: float = 0.09
    at_eps: float = 0.3
    at_step: float = 0.1
    at_steps: int = 40
    weight_refresh_every: int = 20
    lp_eps_ramp_epochs: int = 5  # lp: the radius reaches eps_train after this many epochs
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
        if self.objective not in OBJECTIVES:
            raise SdpcertError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        for name in ("hidden", "epochs", "batch_size", "lr_decay_every", "at_steps", "weight_refresh_every",
                     "threads", "eig_iters", "lp_eps_ramp_epochs"):
            positive_int(name, getattr(self, name))
        nonnegative_int("snapshot_every", self.snapshot_every)
        for name in ("limit", "test_limit"):
            positive_int(name, getattr(self, name), optional=True)
        for name in ("lr", "eps_train", "sdp_lambda", "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps",
                     "at_step"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SdpcertError(f"{name} must be a number; got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SdpcertError(f"{name} must be finite and >= 0; got {value!r}")
            setattr(self, name, value)
        self._check_device()
        if self.lr <= 0:
            raise SdpcertError(f"lr must be > 0; got {self.lr}")
        if self.resume and self.out_dir is None:
            raise SdpcertError("resume needs out_dir (the folder holding checkpoint.pt)")
        if self.data is not None:
            self.data = str(self.data)
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)

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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
