"""Training the paper's networks (§6, docs/design.md §6): ``train(TrainConfig(objective="sdp", epochs=...))``.

- :mod:`.config` -- :class:`TrainConfig` and ``OBJECTIVES``, the one list of the paper's objectives (= the seven
  networks of ``sdpcert reproduce``), and ``EXTRA_OBJECTIVES`` (``crown-box``: certified training over the input
  box) that ``sdpcert train`` also accepts;
- :mod:`.objectives` -- one loss function per objective (what each objective is: see there);
- :mod:`.dual` -- the dual certificate from the current c_ij (proven, logged every epoch by the sdp objectives);
- :mod:`.trainer` -- :class:`Trainer`: model, optimizer, regularizer, generator, steps, checkpoints;
  :func:`torch_threads`, the one place that pins torch's thread count;
- :mod:`.loop` -- :func:`train`: epochs, evaluation, logs, the run folder.

Every epoch logs the mean training loss (and its parts), the clean test error and, for the sdp objectives, the
*dual certificate* (eq. 16): the certified test error at eps_train from the CURRENT c_ij, made rigorous by
:meth:`DualCertificateRegularizer.certified_upper` (proven upper bounds on S_ij -- never a Lanczos estimate) and
:func:`certified_error_from_growth`, which repeats ``Certifier.certify_grid``'s per-example computation (float64
logits with their rounding-error bound). A feasible but non-optimal c can only make it worse than the exact SDP.

Reproducibility and resuming: the seed fixes the initial weights (drawn inside ``torch.random.fork_rng``), and one
``torch.Generator`` drives the minibatch order, the pair sampling and the PGD starts. After every epoch
``out_dir/checkpoint.pt`` holds the model, optimizer and regularizer state, the generator state, the Lanczos warm
starts and the log; ``resume=True`` continues from it (``torch.load(weights_only=True)``: tensors, numbers and
strings only) and gives the same weights as an uninterrupted run. Training runs on ``threads`` torch threads
(default 1: a fixed reduction order, and the fastest choice for these GEMMs on a small shared machine).
"""

from .config import (CHECKPOINT_NAME, EXTRA_OBJECTIVES, LOG_CSV_NAME, LOG_JSON_NAME, MODEL_NAME, OBJECTIVES,
                     TRAIN_OBJECTIVES, TrainConfig)
from .dual import certified_error_from_growth, dual_growth
from .loop import format_epoch, load_split, train
from .objectives import LOSSES, crammer_singer_hinge, multiclass_hinge, pgd_torch
from .trainer import Trainer, threads_for, torch_threads

__all__ = ["TrainConfig", "OBJECTIVES", "EXTRA_OBJECTIVES", "TRAIN_OBJECTIVES", "train", "Trainer", "load_split",
           "format_epoch", "threads_for",
           "torch_threads", "certified_error_from_growth", "dual_growth", "multiclass_hinge", "crammer_singer_hinge",
           "pgd_torch", "LOSSES",
           "CHECKPOINT_NAME", "MODEL_NAME", "LOG_JSON_NAME", "LOG_CSV_NAME"]
