"""The LP bound of Wong & Kolter (2018) in torch, differentiable, for LP-NN training (the ``lp`` objective).

For the one-hidden-layer ReLU network ``f(x) = V relu(W x + b) + b2``, an example (x, y) and a class j, the W-K dual
network at their choice of dual variables bounds ``max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` (docs/design.md
§2; the derivation is in the docstring of the rigorous float64 version that certificates use, in
:mod:`sdpcert.certify`). Here the bounds are computed in the tensors' dtype without any rounding-error allowance: training
values, NOT certificates. The W-K robust loss is the cross-entropy of these bounds (W-K's negated dual objectives J).
The l_inf box is not clipped to [0, 1] (the certificates do not clip it either).
"""

from __future__ import annotations

import torch

from .._checks import check_eps
from ..errors import NonFiniteError, SdpcertError, ShapeError

__all__ = ["lp_margin_bounds_torch", "lp_robust_loss", "check_torch_args"]


def check_torch_args(W, b, V, b2, X, y) -> None:
    """Shapes, types and labels of the torch LP bound's arguments (one error per mistake)."""
    for name, t in (("W", W), ("b", b), ("V", V), ("b2", b2), ("X", X), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise SdpcertError(f"{name} must be a torch tensor; got {type(t).__name__}")
    if W.ndim != 2:
        raise ShapeError(f"W must have shape (m, d); got {tuple(W.shape)}")
    m, d = W.shape
    if b.shape != (m,):
        raise ShapeError(f"b must have shape ({m},) to match W {tuple(W.shape)}; got {tuple(b.shape)}")
    if V.ndim != 2 or V.shape[1] != m or V.shape[0] < 2:
        raise ShapeError(f"V must have shape (k, {m}) with k >= 2 to match W {tuple(W.shape)}; got {tuple(V.shape)}")
    k = V.shape[0]
    if b2.shape != (k,):
        raise ShapeError(f"b2 must have shape ({k},) to match V {tuple(V.shape)}; got {tuple(b2.shape)}")
    if X.ndim != 2 or X.shape[1] != d:
        raise ShapeError(f"X must have shape (n, {d}) for this network; got {tuple(X.shape)}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ShapeError(f"y must have shape ({X.shape[0]},) to match X; got {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise SdpcertError(f"y must hold integer class labels; got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
        raise SdpcertError(f"labels must lie in 0..{k - 1} for this network; got range {int(y.min())}..{int(y.max())}")


def lp_margin_bounds_torch(W, b, V, b2, X, y, eps, check: bool = True):
    """(N, k) tensor: W-K upper bounds on ``max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` (0 in column y).

    Differentiable in W, b, V, b2 and X (autograd through the bounds l, u and the slopes, as in W-K's robust training).
    The l_inf box is not clipped to [0, 1]. ``check=False`` skips the argument checks (shapes, labels, NaN in X) in a
    training loop that has already validated them. Not a certificate by itself: it ignores floating-point rounding;
    use :func:`sdpcert.certify.lp_worst_margins` for proofs.
    """
    eps = check_eps(eps)
    if check:
        check_torch_args(W, b, V, b2, X, y)
        if not bool(torch.isfinite(X).all()):
            raise NonFiniteError(f"X contains {int((~torch.isfinite(X)).sum())} non-finite values (NaN/inf)")
    y = y.long()
    z0 = X @ W.t() + b                                  # (N, m)
    r = eps * W.abs().sum(dim=1)                        # (m,)
    lower, upper = z0 - r, z0 + r
    active = lower >= 0
    ambiguous = (lower < 0) & (upper > 0)
    safe = torch.where(ambiguous, upper - lower, torch.ones_like(upper))
    slope = torch.where(ambiguous, upper / safe, active.to(z0.dtype))   # D of the W-K dual network
    v = V.unsqueeze(0) - V[y].unsqueeze(1)              # (N, k, m): V_j - V_y
    nu = slope.unsqueeze(1) * v                         # (N, k, m)
    linear = (nu * z0.unsqueeze(1)).sum(dim=-1)         # nu^T z0
    spread = eps * (nu @ W).abs().sum(dim=-1)           # eps ||W^T nu||_1
    offset = torch.where(ambiguous, -lower * slope, torch.zeros_like(slope))  # -s l >= 0 on ambiguous units
    chord = (offset.unsqueeze(1) * v.clamp(min=0)).sum(dim=-1)
    return (b2.unsqueeze(0) - b2[y].unsqueeze(1)) + linear + spread + chord


def lp_robust_loss(W, b, V, b2, X, y, eps, check: bool = True):
    """W-K robust loss: mean over the batch of cross-entropy(bounds, y), bounds from :func:`lp_margin_bounds_torch`
    (W-K's ``CE(-J(c), y)``: the bounds are the negated dual objectives). An upper bound on the mean worst-case
    cross-entropy over the l_inf ball."""
    bounds = lp_margin_bounds_torch(W, b, V, b2, X, y, eps, check=check)
    return torch.nn.functional.cross_entropy(bounds, y.long())
