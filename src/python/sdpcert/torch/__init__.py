"""The PyTorch face of sdpcert: ``import sdpcert.torch as sct``.

- :func:`pair_dual_penalty` -- the autograd op: per class pair, ``D * max(lambda_max(M_ij - diag c_ij), 0) +
  sum max(c_ij, 0)`` as a differentiable function of W, V and c (analytic backward from the top eigenvector; CPU
  tensors through the compiled batched Lanczos, CUDA tensors through torch). Training estimates, not certificates.
- :class:`DualCertificateRegularizer` -- an ``nn.Module`` that owns the c_ij and the pair sampling:
  ``loss = task_loss + reg(W, V, reg.sample_pairs_sharing_class())``; :meth:`~DualCertificateRegularizer.certified_upper`
  gives the PROVEN bounds from the current c (the paper's dual certificate), and
  :meth:`~DualCertificateRegularizer.certified_error` / :meth:`~DualCertificateRegularizer.certify` the PROVEN
  certified error on data from them.
- :func:`certified_dual_bounds`, :func:`top_eigenpairs`, :class:`EigenWarmStart`, :func:`pair_matrix_torch`.
- :func:`lp_margin_bounds_torch`, :func:`lp_robust_loss` -- the Wong-Kolter LP bound in torch (LP-NN training).
- :func:`linear_margin_bounds_torch`, :func:`interval_margin_bounds_torch`, :func:`certified_cross_entropy` -- margin
  bounds over the ball intersected with an input box such as [0, 1] (linear relaxation with adaptive or chord lower
  slopes, interval), and their robust cross-entropy (the ``crown-box`` training objective; ``box_bound``).

Threads (:mod:`.threads`): the op's own work runs on one torch thread and one core thread whatever
``torch.set_num_threads`` says; a :class:`ThreadOversubscriptionWarning` (once per process) says to call
``torch.set_num_threads(1)`` when torch's own threads meet busy cores.

Modules, in the order they build on each other: ``checks`` (argument checks), ``threads`` (sharing the cores
with torch), ``eigen`` (warm starts and the two eigen backends), ``penalty`` (the autograd op, the proven bounds,
the eigen worker thread), ``regularizer`` (the module), ``lp`` (the LP bound for training), ``box_bound`` (the
bounds over the input box for training).
"""

from .eigen import EigenWarmStart, Eigenpairs, pair_matrix_torch, top_eigenpairs
from .box_bound import certified_cross_entropy, interval_margin_bounds_torch, linear_margin_bounds_torch
from .lp import lp_margin_bounds_torch, lp_robust_loss
from .penalty import certified_dual_bounds, pair_dual_penalty
from .regularizer import DualCertificateRegularizer
from .threads import ThreadOversubscriptionWarning

__all__ = ["DualCertificateRegularizer", "ThreadOversubscriptionWarning", "EigenWarmStart", "Eigenpairs",
           "certified_dual_bounds", "pair_dual_penalty",
           "pair_matrix_torch", "top_eigenpairs", "lp_margin_bounds_torch", "lp_robust_loss",
           "linear_margin_bounds_torch", "interval_margin_bounds_torch", "certified_cross_entropy"]
