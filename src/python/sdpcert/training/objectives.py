"""The training objectives (``TrainConfig.objective``, paper §6), one loss function each, in :data:`LOSSES`.

f = the logits of a 784-m-10 ReLU net, hinge = the mean Weston-Watkins multiclass hinge
``sum_{j != y} max(0, 1 + f_j - f_y)``:

* ``nt``  -- cross-entropy.
* ``fro`` -- hinge + fro_coef (||W||_F + ||V||_F)                      (paper: 0.08)
* ``spe`` -- hinge + spe_coef (||W||_2 + ||V||_2)                      (paper: 0.09; ||.||_2 by a warm-started power
  iteration, :func:`spectral_norm_estimate`)
* ``at``  -- CE + 0.5 CE on PGD examples (l_inf at_eps, at_steps sign steps of at_step, random start, clipped to
  [0, 1]; paper: 0.3 / 40 / 0.1). The PGD runs inside torch and takes gradients w.r.t. the inputs only.
* ``sdp`` -- sdp_loss_scale * hinge + sdp_lambda * sum_p w_p penalty_p over the k - 1 pairs sharing a random class
  (:class:`sdpcert.torch.DualCertificateRegularizer`, whose c_ij are trained by the same Adam). ``sdp_hinge``
  picks the hinge: ``ww`` (Weston-Watkins, above; the default) or ``cs`` (Crammer-Singer, the closest wrong class
  only, :func:`crammer_singer_hinge`).
* ``lp`` -- LP-NN (Wong & Kolter 2018): the robust cross-entropy of the LP bounds at the current radius
  (:func:`sdpcert.torch.lp_robust_loss`, the margins' upper bounds over the l_inf ball used as logits); the
  radius grows linearly from eps_train / lp_eps_ramp_epochs to eps_train over the first lp_eps_ramp_epochs epochs
  (their schedule starts small: at the full radius from the first step the bounds are vacuous and the net collapses).
* ``crown-box`` (not one of the paper's; ``config.EXTRA_OBJECTIVES``) -- kappa CE(logits) + (1 - kappa) CE(bounds):
  the robust cross-entropy of linear-relaxation upper bounds on the margins over the l_inf ball of the current
  radius intersected with the input box (``input_domain``, [0, 1] by default: on MNIST most pixels are 0 and can
  only grow), :func:`sdpcert.torch.box_bound.certified_cross_entropy`: exact interval pre-activation bounds, the
  W-K upper chord, adaptive (CROWN) or chord lower slopes, optionally mixed with the interval bound. The radius
  and kappa follow a per-step schedule (:meth:`Trainer.certified_schedule`): a natural warm-up (radius 0, kappa
  cert_kappa_start), then a linear ramp of the radius to eps_train and of kappa to cert_kappa_end (certified
  training at the full radius from the first step collapses, as the ``lp`` note says; the mixed natural loss is
  CROWN-IBP's kappa). Two optional extras: ``cert_pgd_weight`` beta replaces that share of CE(bounds) by the
  cross-entropy on PGD examples at the same radius in the box (``cert_pgd_steps`` steps of 2.5 radius / steps; the
  "expressive losses" mix), and ``cert_sdp_lambda`` adds the SDP dual penalty of the ``sdp`` objective (k - 1 pairs
  sharing a random class, weight 1 inside), scaled by radius / eps_train so that it ramps in with the radius.
* ``sdp-weighted`` -- as ``sdp`` with w_ij proportional to the fraction of training points whose maximising pair in
  the (dual) certificate is {i, j}, scaled to mean 1 over the pairs (so the penalty's total weight is the unweighted
  one's, redistributed). Training starts unweighted (w = 1) and refreshes the weights at the start of every
  weight_refresh_every-th epoch after the first. The paper's "lambda_ij = w_ij lambda" leaves the scale open; with
  the bare fractions (summing to 1) the penalty was 45x weaker than the unweighted one at the same lambda, and the
  dual certificate stayed at 100% (mean S_ij 420-520 against 43-60 unweighted; measured). Weights taken from the
  random initial net were 0 for 29 of the 45 pairs, whose S_ij then grew unchecked (mean S_ij 140 -> 230 over 8
  epochs, dual certificate 100%; measured), hence no refresh at epoch 0.

Penalty scale (docs/design.md §6): the paper's eq. (15) sums the loss over the N training points and adds the
penalty once; a minibatch loop with a *mean* loss must choose the relative scale. ``sdp_loss_scale`` multiplies the
mean hinge: 10 (the default) trained in the reference run, 1 collapsed (clean error 70-88%).

A new objective is a name in :data:`sdpcert.training.config.OBJECTIVES` (one of the paper's networks, which
``sdpcert reproduce`` trains) or :data:`~sdpcert.training.config.EXTRA_OBJECTIVES` (``sdpcert train`` only) and a
function here in :data:`LOSSES`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .config import SDP_HINGE_NAMES, TRAIN_OBJECTIVES

__all__ = ["multiclass_hinge", "crammer_singer_hinge", "SDP_HINGES", "sdp_hinge", "pgd_torch", "spectral_norm_estimate",
           "batch_losses", "LOSSES"]


def multiclass_hinge(logits: Any, labels: Any) -> Any:
    """Mean over the batch of the Weston-Watkins hinge ``sum_{j != y} max(0, 1 + f_j - f_y)``."""
    import torch

    true = logits.gather(1, labels[:, None])
    terms = torch.clamp(1.0 + logits - true, min=0.0)
    terms = terms.scatter(1, labels[:, None], 0.0)
    return terms.sum(dim=1).mean()


def crammer_singer_hinge(logits: Any, labels: Any) -> Any:
    """Mean over the batch of the Crammer-Singer hinge ``max(0, 1 + max_{j != y} f_j - f_y)``: only the closest
    wrong class is pushed, as in the certificate's ``max_{i != y}`` (Keras' ``categorical_hinge``)."""
    import torch

    true = logits.gather(1, labels[:, None])
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return torch.clamp(1.0 + others.max(dim=1).values - true[:, 0], min=0.0).mean()


#: The classification losses of the sdp objectives (``TrainConfig.sdp_hinge``).
SDP_HINGES = {"ww": multiclass_hinge, "cs": crammer_singer_hinge}
assert tuple(SDP_HINGES) == SDP_HINGE_NAMES, "SDP_HINGES and SDP_HINGE_NAMES must name the same hinges"


def sdp_hinge(config: Any) -> Callable:
    """The classification loss the sdp objectives use under ``config``."""
    return SDP_HINGES[config.sdp_hinge]


def pgd_torch(model: Any, x: Any, labels: Any, eps: float, step: float, steps: int, generator: Any,
              box: Optional[Any] = (0.0, 1.0)) -> Any:
    """l_inf PGD on the cross-entropy for adversarial training: uniform random start in the ball, ``steps`` sign
    steps of size ``step``, each projected onto the ball and ``box`` ([0, 1] by default; None: the ball only).
    Gradients w.r.t. the inputs only (the parameters' .grad are not touched). Returns the detached adversarial
    batch."""
    import torch

    lo, hi = x - eps, x + eps
    if box is not None:
        lo, hi = torch.clamp(lo, min=float(box[0])), torch.clamp(hi, max=float(box[1]))
    noise = ((2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1) * eps).to(x.device)
    xa = torch.minimum(torch.maximum(x + noise, lo), hi)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = torch.minimum(torch.maximum(xa + step * grad.sign(), lo), hi)
    return xa.detach()


def spectral_norm_estimate(M: Any, u: Optional[Any], seed: int, iterations: int = 3) -> tuple[Any, Any]:
    """``(||M||_2 as u^T M v, the new u)``: the top singular pair (u, v) from a power iteration warm-started at the
    previous step's ``u`` (``iterations`` rounds; a fixed random start from ``seed`` when ``u`` is None or of
    another length). The value's gradient is ``u v^T``, the gradient of the spectral norm at a simple top singular
    value. A full SVD per step (``matrix_norm(ord=2)``) made a Spe-NN epoch 58 s against 3.4 s for Fro-NN
    (measured); the weights move little between steps, so a few rounds from the last u keep the estimate at the
    SVD's value (tested)."""
    import torch

    with torch.no_grad():
        if u is None or u.shape != (M.shape[0],):
            gen = torch.Generator().manual_seed(seed + 7919)  # fixed start, separate from batches
            u = torch.randn(M.shape[0], generator=gen, dtype=M.dtype).to(M.device)
        for _ in range(iterations):
            v = M.t() @ u
            v = v / v.norm().clamp_min(1e-30)
            u = M @ v
            u = u / u.norm().clamp_min(1e-30)
        v = M.t() @ u  # v from the final u: the value is ||M^T u|| (<= ||M||_2), the gradient u v^T
        v = v / v.norm().clamp_min(1e-30)
    return u @ (M @ v), u


# ----------------------------------------------------------------------------------------------- one loss each
# Each takes the Trainer (model, W, V, reg, generator, config) and a batch; returns dict(loss, and its parts).
def _nt(tr: Any, xb: Any, yb: Any) -> dict:
    import torch.nn.functional as F

    ce = F.cross_entropy(tr.model(xb), yb)
    return {"ce": ce, "loss": ce}


def _fro(tr: Any, xb: Any, yb: Any) -> dict:
    import torch

    hinge = multiclass_hinge(tr.model(xb), yb)
    reg = tr.config.fro_coef * (torch.linalg.matrix_norm(tr.W) + torch.linalg.matrix_norm(tr.V))
    return {"hinge": hinge, "reg": reg, "loss": hinge + reg}


def _spe(tr: Any, xb: Any, yb: Any) -> dict:
    hinge = multiclass_hinge(tr.model(xb), yb)
    reg = tr.config.spe_coef * (tr.spectral_norm("W", tr.W) + tr.spectral_norm("V", tr.V))
    return {"hinge": hinge, "reg": reg, "loss": hinge + reg}


def _at(tr: Any, xb: Any, yb: Any) -> dict:
    import torch.nn.functional as F

    cfg = tr.config
    ce = F.cross_entropy(tr.model(xb), yb)
    xa = pgd_torch(tr.model, xb, yb, cfg.at_eps, cfg.at_step, cfg.at_steps, tr.generator)
    ce_adv = F.cross_entropy(tr.model(xa), yb)
    return {"ce": ce, "ce_adv": ce_adv, "loss": ce + 0.5 * ce_adv}


def _sdp(tr: Any, xb: Any, yb: Any) -> dict:
    # The autograd form; Trainer.step computes the same gradient with the penalty on a worker thread.
    hinge = sdp_hinge(tr.config)(tr.model(xb), yb)
    pairs = tr.reg.sample_pairs_sharing_class(tr.generator)
    penalty = tr.reg(tr.W, tr.V, pairs)  # includes sdp_lambda and the pair weights
    return {"hinge": hinge, "penalty": penalty, "loss": tr.config.sdp_loss_scale * hinge + penalty}


def _lp(tr: Any, xb: Any, yb: Any) -> dict:
    from ..torch.lp import lp_robust_loss

    ce = lp_robust_loss(tr.W, tr.model[0].bias, tr.V, tr.model[2].bias, xb, yb, tr.lp_eps(), check=False)
    return {"lp_robust_ce": ce, "loss": ce}


def _crown_box(tr: Any, xb: Any, yb: Any) -> dict:
    import torch.nn.functional as F

    from ..torch.box_bound import certified_cross_entropy

    cfg = tr.config
    eps, kappa = tr.certified_schedule()
    logits = tr.model(xb)
    ce = F.cross_entropy(logits, yb)
    robust = certified_cross_entropy(tr.W, tr.model[0].bias, tr.V, tr.model[2].bias, xb, yb, eps, cfg.input_domain,
                                     cfg.cert_lower_slopes, cfg.cert_interval_weight, check=False)
    out = {"ce": ce, "robust_ce": robust}
    if cfg.cert_pgd_weight > 0:
        # The expressive-loss mix: part of the robust term from PGD at the same radius, inside the input box.
        step = 2.5 * eps / cfg.cert_pgd_steps
        xa = pgd_torch(tr.model, xb, yb, eps, step, cfg.cert_pgd_steps, tr.generator, cfg.input_domain)
        out["pgd_ce"] = F.cross_entropy(tr.model(xa), yb)
        robust = (1.0 - cfg.cert_pgd_weight) * robust + cfg.cert_pgd_weight * out["pgd_ce"]
    loss = kappa * ce + (1.0 - kappa) * robust
    if cfg.cert_sdp_lambda > 0:
        # The SDP dual penalty of the k - 1 pairs sharing a random class (as in sdp), ramped in with the radius.
        pairs = tr.reg.sample_pairs_sharing_class(tr.generator)
        out["sdp_penalty"] = tr.reg(tr.W, tr.V, pairs)
        loss = loss + cfg.cert_sdp_lambda * (eps / cfg.eps_train if cfg.eps_train > 0 else 1.0) * out["sdp_penalty"]
    out["loss"] = loss
    return out


#: objective name -> loss function; its keys are exactly ``TRAIN_OBJECTIVES`` (the paper's, then the extra ones).
LOSSES: dict[str, Callable[[Any, Any, Any], dict]] = {
    "nt": _nt, "fro": _fro, "spe": _spe, "at": _at, "sdp": _sdp, "sdp-weighted": _sdp, "lp": _lp,
    "crown-box": _crown_box}
assert tuple(LOSSES) == TRAIN_OBJECTIVES, "LOSSES and TRAIN_OBJECTIVES must name the same objectives in the same order"


def batch_losses(trainer: Any, xb: Any, yb: Any) -> dict:
    """The objective of ``trainer.config`` on one batch: dict(loss, and its parts as tensors)."""
    return LOSSES[trainer.config.objective](trainer, xb, yb)
