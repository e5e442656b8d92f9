"""Differentiable per-example margin bounds over the l_inf ball intersected with an input box, for certified training
(the ``crown-box`` objective).

For the one-hidden-layer ReLU network ``f(x) = V relu(W x + b) + b2``, an example (x, y), a class j and
v = V_j - V_y, both functions here bound ``max f_j(x') - f_y(x')`` over the region

    B = [max(x - eps, lo), min(x + eps, hi)]            (the ball intersected with the input box, e.g. [0, 1])

written as the centre c = (l + u) / 2 and the per-coordinate radius rho = (u - l) / 2. On MNIST the box matters
a lot: most pixels are 0 and can only grow, so their rho is eps / 2, and the pre-activation intervals shrink
accordingly. The pre-activation bounds z' = W x' + b in [z0 - r, z0 + r], z0 = W c + b, r = |W| rho, are exact for
one linear layer over a box (each end is attained at a corner), so for one hidden layer interval propagation of the
first layer loses nothing; what remains is the relaxation of the ReLU:

* :func:`interval_margin_bounds_torch` (IBP): ``v^T relu(z') <= [v]_+^T relu(hi) - [v]_-^T relu(lo)``.
* :func:`linear_margin_bounds_torch` (CROWN / the Wong-Kolter dual with a choice of lower slopes): on an unstable
  unit (lo < 0 < hi) the chord ``relu(z) <= s (z - lo)``, s = hi / (hi - lo), is used where v_k > 0 and
  ``relu(z) >= a z`` with a in [0, 1] where v_k < 0, so with nu = D v (D the slope per unit and class)

      f_j(x') - f_y(x') <= (b2_j - b2_y) + nu^T z0 + rho^T |W^T nu| + sum_{unstable, v > 0} (-s lo v).

  ``lower_slopes="chord"`` takes a = s (Wong & Kolter; the slope the rigorous ``lp`` certificate uses, so then this
  is that bound up to its rounding allowance); ``"adaptive"`` takes a = 1 where hi >= -lo and 0 elsewhere (CROWN's
  choice: the tighter of the two lines for the larger half of the interval). Both are valid for any slope in
  [0, 1] (docs: sdpcert.certify.lp, step 3), and the certificate's ``lp-opt`` optimises them.

These are training values in the tensors' dtype, without any rounding-error allowance: NOT certificates (use
``Certifier(net, input_domain=(0, 1))``). Everything is batched tensor algebra, differentiable in W, b, V, b2 and
X through the bounds and slopes, on any torch device.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._checks import check_eps
from ..errors import NonFiniteError, SdpcertError
from .lp import check_torch_args

__all__ = ["LOWER_SLOPES", "box_region_torch", "preactivation_bounds_torch", "interval_margin_bounds_torch",
           "linear_margin_bounds_torch", "certified_cross_entropy"]

#: The lower-slope rules of :func:`linear_margin_bounds_torch` on unstable units with v_k < 0.
LOWER_SLOPES = ("adaptive", "chord")


def _checked_domain(input_domain: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    if input_domain is None:
        return None
    try:
        lo, hi = (float(t) for t in input_domain)
    except (TypeError, ValueError):
        raise SdpcertError(f"input_domain must be None or two numbers (lo, hi); got {input_domain!r}") from None
    if not (lo == lo and hi == hi) or lo > hi:  # NaN or an empty box
        raise SdpcertError(f"input_domain must satisfy lo <= hi; got {input_domain!r}")
    return lo, hi


def box_region_torch(X: torch.Tensor, eps: float, input_domain: Optional[Sequence[float]] = (0.0, 1.0)):
    """``(c, rho)``: centre and per-coordinate radius of the ball of radius eps around each row of X intersected with
    the box ``input_domain`` (None: the ball, c = X and rho = eps everywhere). X must lie in the box."""
    domain = _checked_domain(input_domain)
    if domain is None:
        return X, torch.full_like(X, float(eps))
    low = torch.clamp(X - eps, min=domain[0])
    high = torch.clamp(X + eps, max=domain[1])
    return 0.5 * (low + high), 0.5 * (high - low)


def preactivation_bounds_torch(W, b, c, rho):
    """``(z0, lo, hi)``: the hidden pre-activations at the centres and their exact interval over the regions
    (z0 -+ |W| rho; exact for one linear layer over a box)."""
    z0 = c @ W.t() + b
    r = rho @ W.abs().t()
    return z0, z0 - r, z0 + r


def _checked(W, b, V, b2, X, y, eps, check: bool):
    eps = check_eps(eps)
    if check:
        check_torch_args(W, b, V, b2, X, y)
        if not bool(torch.isfinite(X).all()):
            raise NonFiniteError(f"X contains {int((~torch.isfinite(X)).sum())} non-finite values (NaN/inf)")
    return eps, y.long()


def _check_inside(X, input_domain) -> None:
    domain = _checked_domain(input_domain)
    X = X.detach()
    if domain is not None and X.numel() and (float(X.min()) < domain[0] or float(X.max()) > domain[1]):
        raise SdpcertError(f"X must lie in the input domain [{domain[0]:g}, {domain[1]:g}]; got values in "
                           f"[{float(X.min()):g}, {float(X.max()):g}]")


def _other_classes(y, k: int):
    """(N, k - 1) long tensor: per row the classes other than y, in order."""
    classes = torch.arange(k, device=y.device).expand(y.shape[0], k)
    return classes[classes != y.unsqueeze(1)].reshape(y.shape[0], k - 1)


def interval_margin_bounds_torch(W, b, V, b2, X, y, eps, input_domain: Optional[Sequence[float]] = (0.0, 1.0),
                                 check: bool = True):
    """(N, k) interval (IBP) upper bounds on ``max f_j(x') - f_y(x')`` over the ball intersected with the box (0 in
    column y). A training value, not a certificate."""
    eps, y = _checked(W, b, V, b2, X, y, eps, check)
    if check:
        _check_inside(X, input_domain)
    c, rho = box_region_torch(X, eps, input_domain)
    _, lo, hi = preactivation_bounds_torch(W, b, c, rho)
    v = V.unsqueeze(0) - V[y].unsqueeze(1)                              # (N, k, m)
    h_hi, h_lo = hi.clamp(min=0).unsqueeze(1), lo.clamp(min=0).unsqueeze(1)
    upper = (v.clamp(min=0) * h_hi + v.clamp(max=0) * h_lo).sum(dim=-1)
    return (b2.unsqueeze(0) - b2[y].unsqueeze(1)) + upper


def linear_margin_bounds_torch(W, b, V, b2, X, y, eps, input_domain: Optional[Sequence[float]] = (0.0, 1.0),
                               lower_slopes: str = "adaptive", check: bool = True):
    """(N, k) linear-relaxation upper bounds on ``max f_j(x') - f_y(x')`` over the ball intersected with the box (0
    in column y; see the module docstring). ``input_domain=None``: the whole ball (then ``lower_slopes="chord"``
    is exactly :func:`sdpcert.torch.lp_margin_bounds_torch`). A training value, not a certificate."""
    if lower_slopes not in LOWER_SLOPES:
        raise SdpcertError(f"lower_slopes must be one of {', '.join(LOWER_SLOPES)}; got {lower_slopes!r}")
    eps, y = _checked(W, b, V, b2, X, y, eps, check)
    if check:
        _check_inside(X, input_domain)
    c, rho = box_region_torch(X, eps, input_domain)
    z0, lo, hi = preactivation_bounds_torch(W, b, c, rho)
    active = lo >= 0
    unstable = (lo < 0) & (hi > 0)
    width = torch.where(unstable, hi - lo, torch.ones_like(hi))
    chord = torch.where(unstable, hi / width, active.to(z0.dtype))     # upper slope: chord, 1 active, 0 inactive
    if lower_slopes == "chord":
        lower = chord
    else:  # CROWN: 1 where the interval is mostly positive; no gradient flows through this choice
        lower = torch.where(unstable, (hi >= -lo).to(z0.dtype), active.to(z0.dtype))
    # only the k - 1 classes j != y: the (N (k - 1), m) x (m, d) product W^T nu is most of the work
    others = _other_classes(y, V.shape[0])                              # (N, k - 1)
    v = V[others] - V[y].unsqueeze(1)                                   # (N, k - 1, m)
    slope = torch.where(v > 0, chord.unsqueeze(1), lower.unsqueeze(1))
    nu = slope * v
    linear = (nu * z0.unsqueeze(1)).sum(dim=-1)                         # nu^T z0
    spread = ((nu @ W).abs() * rho.unsqueeze(1)).sum(dim=-1)            # rho^T |W^T nu|
    offset = torch.where(unstable, -lo * chord, torch.zeros_like(lo))   # -s lo >= 0 on unstable units
    intercept = (offset.unsqueeze(1) * v.clamp(min=0)).sum(dim=-1)
    relaxed = torch.zeros(X.shape[0], V.shape[0], dtype=z0.dtype, device=z0.device)
    relaxed = relaxed.scatter(1, others, linear + spread + intercept)  # column y: the margin f_y - f_y = 0
    return (b2.unsqueeze(0) - b2[y].unsqueeze(1)) + relaxed


def certified_cross_entropy(W, b, V, b2, X, y, eps, input_domain: Optional[Sequence[float]] = (0.0, 1.0),
                            lower_slopes: str = "adaptive", interval_weight: float = 0.0, check: bool = True):
    """The robust cross-entropy: mean over the batch of cross-entropy(bounds, y), the bounds on the margins
    ``f_j - f_y`` used as logits (column y is 0). ``bounds = (1 - w) linear + w interval`` with w =
    ``interval_weight`` in [0, 1] (CROWN-IBP's mixing; w = 0: the linear bound alone). Each bound is an upper
    bound on the worst margin, so the loss bounds the mean worst-case cross-entropy over the regions from above."""
    w = float(interval_weight)
    if not 0.0 <= w <= 1.0:
        raise SdpcertError(f"interval_weight must lie in [0, 1]; got {interval_weight!r}")
    bounds = None
    if w < 1.0:
        bounds = linear_margin_bounds_torch(W, b, V, b2, X, y, eps, input_domain, lower_slopes, check=check)
        if w > 0.0:
            bounds = (1.0 - w) * bounds
    if w > 0.0:
        ibp = w * interval_margin_bounds_torch(W, b, V, b2, X, y, eps, input_domain, check=check and bounds is None)
        bounds = ibp if bounds is None else bounds + ibp
    return torch.nn.functional.cross_entropy(bounds, y.long())
