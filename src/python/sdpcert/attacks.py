"""l_inf attacks: lower bounds on the robust error that the certificates must never contradict (docs/design.md §1).

A certificate says "no point in the ball changes the label"; an attack exhibits points that do. Every certified
point an attack breaks is a soundness bug, so these attacks are the test oracle of the certifier, and the gap
between the attack error (lower bound) and the certified error (upper bound) is what the paper plots.

- :func:`fgsm`: one signed-gradient step of size eps on the cross-entropy (Goodfellow et al. 2015).
- :func:`pgd`: projected signed-gradient ascent with a random start and restarts, on the cross-entropy or on the
  margin ``max_{j != y} f_j - f_y`` (Madry et al. 2018).
- :func:`cw_linf`: PGD on the Carlini-Wagner margin loss, the "CW-l_inf" attack of this literature.
- :func:`attack_error`, :func:`evaluate_attacks`: the fraction of points misclassified after an attack.

Conventions shared by all attacks:

- ``model`` is a :class:`~sdpcert.model.TwoLayerNet` (attacked in float64 through ``to_torch(torch.float64)``)
  or a torch ``nn.Module`` mapping ``(n, d)`` inputs to ``(n, k)`` logits (attacked in its own dtype).
  ``X`` is ``(n, d)`` with entries in ``[0, 1]``, ``y`` ``(n,)`` integer labels; numpy or torch, on the CPU.
- Every returned point lies in ``[x - eps, x + eps] ∩ [0, 1]``: the iterates are kept in float64 and projected
  onto bounds that are nudged inward by one ulp where rounding would otherwise put ``|x_adv - x|`` above eps.
- The clean point ``x`` is itself a candidate: a misclassified ``x`` counts as fooled (the attack error includes
  the clean error, as in the paper), and such an ``x`` is returned unchanged.
- ``fooled`` is decided again, after the attack, in float64 numpy on the returned points: with
  ``TwoLayerNet.forward`` when the model is a ``TwoLayerNet`` or converts to one (``TwoLayerNet.from_torch``),
  else with a float64 copy of the module. It holds only for returned points that are misclassified there and lie
  in the ball and in ``[0, 1]``, so a float32 rounding artifact cannot claim a break.
- Deterministic: the random starts come from a ``torch.Generator`` seeded with ``seed``; the global torch RNG is
  not touched. For bit-identical results across machines run torch on one thread (``torch.set_num_threads(1)``).

Returns are numpy: ``(X_adv, fooled)`` with ``X_adv`` float64 ``(n, d)`` and ``fooled`` bool ``(n,)``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ._checks import check_data, check_eps, int_in_range, positive_float, positive_int
from .errors import SdpcertError
from .model.network import TwoLayerNet

__all__ = ["fgsm", "pgd", "cw_linf", "attack_error", "evaluate_attacks", "ATTACKS", "LOSSES"]

#: Loss names accepted by :func:`pgd`.
LOSSES = ("ce", "margin")


# ----------------------------------------------------------------------------------------------- validation
@dataclass
class _Target:
    module: Any  # torch module, (n, d) -> (n, k)
    dtype: Any  # torch dtype the module is run in
    d: Optional[int]
    k: Optional[int]
    verify: Callable[[np.ndarray], np.ndarray]  # float64 logits of float64 inputs


def _target(model: Any) -> _Target:
    import torch
    from torch import nn

    if isinstance(model, TwoLayerNet):
        with torch.random.fork_rng(devices=[]):  # nn.Linear's init draws from the global RNG; leave it alone
            module = model.to_torch(torch.float64)
        return _Target(module, torch.float64, model.d, model.k, model.forward)
    if not isinstance(model, nn.Module):
        raise SdpcertError(f"model must be a TwoLayerNet or a torch nn.Module; got {type(model).__name__}")
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float32
    if not dtype.is_floating_point:
        raise SdpcertError(f"the module's parameters must be floating point; got {dtype}")
    try:
        net = TwoLayerNet.from_torch(model)
    except SdpcertError:
        net = None
    if net is not None:
        return _Target(model, dtype, net.d, net.k, net.forward)
    module64 = copy.deepcopy(model).to(torch.float64)  # float64 re-check of a module with no TwoLayerNet form

    def verify(X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module64(torch.from_numpy(X)).numpy()

    return _Target(model, dtype, None, None, verify)


def _attack_points(target: _Target, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """X (a fresh float64 C-order copy, at least one row, in [0, 1]) and y, checked against the model's d and k."""
    X, y = check_data(X, y, target.d, target.k, min_rows=1)
    # the attacks run in float64 on their own copy (check_data refused values that float64 would round)
    X = np.array(X, dtype=np.float64, order="C", copy=True)
    if X.min() < 0.0 or X.max() > 1.0:
        raise SdpcertError(f"X must lie in [0, 1] (the attacks clip to [0, 1]); got values in [{X.min()}, {X.max()}]")
    return X, y


def _seed(value: Any) -> int:
    # torch.Generator.manual_seed takes [-2^63, 2^64 - 1] and raises a bare ValueError/RuntimeError otherwise.
    return int_in_range("seed", value, -2 ** 63, 2 ** 64 - 1)


def _step_size(step_size: Any, eps: float, steps: int) -> float:
    if step_size is None:
        return 2.5 * eps / steps
    return positive_float("step_size", step_size)  # None (the default rule) was handled above


def _box(X: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi] = [x - eps, x + eps] ∩ [0, 1]``, nudged inward so that ``|fl(z - x)| <= eps`` for z in it."""
    lo = np.maximum(X - eps, 0.0)
    hi = np.minimum(X + eps, 1.0)
    over = (X - lo) > eps
    lo[over] = np.nextafter(lo[over], np.inf)
    over = (hi - X) > eps
    hi[over] = np.nextafter(hi[over], -np.inf)
    return lo, hi


# ----------------------------------------------------------------------------------------------- core
def _loss(logits: Any, labels: Any, loss: str) -> Any:
    """Per-example loss to ascend, shape (n,)."""
    import torch

    if loss == "ce":
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    true_logit = logits.gather(1, labels[:, None])[:, 0]
    mask = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()
    return logits.masked_fill(mask, -math.inf).max(dim=1).values - true_logit


def _verified(target: _Target, X: np.ndarray, y: np.ndarray, X_adv: np.ndarray, eps: float) -> np.ndarray:
    """float64 re-check: misclassified by the numpy forward, inside the ball and inside [0, 1]."""
    logits = np.asarray(target.verify(X_adv), dtype=np.float64)
    wrong = np.argmax(logits, axis=1) != y
    in_ball = np.max(np.abs(X_adv - X), axis=1) <= eps
    in_box = np.all((X_adv >= 0.0) & (X_adv <= 1.0), axis=1)
    return wrong & in_ball & in_box


def _run_pgd(target: _Target, X: np.ndarray, y: np.ndarray, eps: float, steps: int, alpha: float,
             restarts: int, random_start: bool, loss: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x0 = torch.from_numpy(X)
    labels = torch.from_numpy(y)
    lo_np, hi_np = _box(X, eps)
    lo, hi = torch.from_numpy(lo_np), torch.from_numpy(hi_np)
    generator = torch.Generator().manual_seed(int(seed))
    module, dtype = target.module, target.dtype

    # best candidate per example: a misclassified point wins (the first one found is kept); else the highest loss
    with torch.no_grad():
        logits = module(x0.to(dtype))
        fooled = logits.argmax(dim=1) != labels
        best_loss = _loss(logits, labels, loss).to(torch.float64)
    best = x0.clone()

    def record(x: Any, logits: Any) -> None:
        nonlocal fooled, best_loss
        with torch.no_grad():
            value = _loss(logits, labels, loss).to(torch.float64)
            wrong = (logits.argmax(dim=1) != labels) & ~fooled
            better = ~fooled & ~wrong & (value > best_loss)
            take = wrong | better
            best[take] = x[take]
            best_loss = torch.where(take, value, best_loss)
            fooled = fooled | wrong

    for _ in range(restarts):
        with torch.no_grad():
            if random_start:
                noise = (2 * torch.rand(x0.shape, generator=generator, dtype=torch.float64) - 1) * eps
                x = torch.minimum(torch.maximum(x0 + noise, lo), hi)
            else:
                x = x0.clone()
        for step in range(steps + 1):
            if step == steps:
                with torch.no_grad():
                    record(x, module(x.to(dtype)))
                break
            xg = x.to(dtype).requires_grad_(True)
            logits = module(xg)
            record(x, logits.detach())
            (grad,) = torch.autograd.grad(_loss(logits, labels, loss).sum(), xg)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + alpha * grad.to(torch.float64).sign(), lo), hi)
    X_adv = best.numpy().copy()
    return X_adv, _verified(target, X, y, X_adv, eps)


# ----------------------------------------------------------------------------------------------- attacks
def fgsm(model: Any, X: Any, y: Any, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fast gradient sign method: ``clip(x + eps · sign(∇_x CE(f(x), y)), ball ∩ [0, 1])``.

    A misclassified clean ``x`` is returned unchanged. Returns ``(X_adv, fooled)`` (see the module docstring).
    """
    import torch

    target = _target(model)
    eps = check_eps(eps)
    X, y = _attack_points(target, X, y)
    lo, hi = _box(X, eps)
    labels = torch.from_numpy(y)
    xg = torch.from_numpy(X).to(target.dtype).requires_grad_(True)
    logits = target.module(xg)
    (grad,) = torch.autograd.grad(_loss(logits, labels, "ce").sum(), xg)
    X_adv = np.clip(X + eps * np.sign(grad.to(torch.float64).numpy()), lo, hi)
    clean_wrong = (logits.detach().argmax(dim=1) != labels).numpy()
    X_adv[clean_wrong] = X[clean_wrong]
    return X_adv, _verified(target, X, y, X_adv, eps)


def pgd(model: Any, X: Any, y: Any, eps: float, steps: int = 40, step_size: Optional[float] = None,
        restarts: int = 1, random_start: bool = True, loss: str = "ce", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Projected gradient descent in l_inf: ``x ← Π_{ball ∩ [0,1]}(x + step_size · sign(∇ loss))``.

    ``steps`` sign-gradient steps from a uniform random start in the ball (or from ``x`` when ``random_start`` is
    False), repeated ``restarts`` times with fresh starts drawn from one generator seeded with ``seed`` (so the
    first restart is the same run as ``restarts=1``). ``step_size`` defaults to ``2.5 eps / steps``; ``loss`` is
    ``"ce"`` (cross-entropy) or ``"margin"`` (``max_{j != y} f_j - f_y``).

    Per example, all iterates of all restarts (and ``x`` itself) are candidates: the first misclassified one wins,
    else the one with the highest loss. Returns ``(X_adv, fooled)`` (see the module docstring).
    """
    target = _target(model)
    eps = check_eps(eps)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    alpha = _step_size(step_size, eps, steps)
    if loss not in LOSSES:
        raise SdpcertError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if not isinstance(random_start, (bool, np.bool_)):
        raise SdpcertError(f"random_start must be True or False; got {random_start!r}")
    seed = _seed(seed)
    X, y = _attack_points(target, X, y)
    return _run_pgd(target, X, y, eps, steps, alpha, restarts, bool(random_start), loss, seed)


def cw_linf(model: Any, X: Any, y: Any, eps: float, steps: int = 100, step_size: Optional[float] = None,
            seed: int = 0, restarts: int = 1, random_start: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Carlini-Wagner l_inf: PGD on the margin loss ``max_{j != y} f_j - f_y`` (see :func:`pgd`)."""
    return pgd(model, X, y, eps, steps=steps, step_size=step_size, restarts=restarts, random_start=random_start,
               loss="margin", seed=seed)


#: Method name -> attack function, for :func:`attack_error` and :func:`evaluate_attacks`.
ATTACKS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {"fgsm": fgsm, "pgd": pgd, "cw": cw_linf}


def attack_error(model: Any, X: Any, y: Any, eps: float, method: str = "pgd", **kw: Any) -> float:
    """Fraction of points misclassified after the attack ``method`` (``"fgsm"``, ``"pgd"`` or ``"cw"``), clean
    errors included; ``kw`` go to the attack. A lower bound on the true robust error at ``eps``."""
    if method not in ATTACKS:
        raise SdpcertError(f"unknown attack {method!r}; choose one of {', '.join(ATTACKS)}")
    _, fooled = ATTACKS[method](model, X, y, eps, **kw)
    return float(fooled.mean())


def evaluate_attacks(net: Any, X: Any, y: Any, eps: float, methods: Sequence[str] = ("fgsm", "pgd", "cw"),
                     options: Optional[dict[str, dict]] = None) -> dict:
    """Run several attacks on the same points.

    ``options`` maps a method to keyword arguments for it (e.g. ``{"pgd": {"restarts": 3}}``). Returns
    ``{"eps", "n", "clean_error", "errors": {method: float}, "fooled": {method: bool (n,)},
    "any_fooled": bool (n,), "error": float}``, where ``error`` is the fraction fooled by at least one attack
    (the best lower bound on the robust error these attacks give).
    """
    options = dict(options or {})
    methods = list(methods)
    if not methods:
        raise SdpcertError("methods must name at least one attack")
    for method in [*methods, *options]:
        if method not in ATTACKS:
            raise SdpcertError(f"unknown attack {method!r}; choose one of {', '.join(ATTACKS)}")
    target = _target(net)
    eps = check_eps(eps)
    X_np, y_np = _attack_points(target, X, y)
    clean_wrong = np.argmax(np.asarray(target.verify(X_np), dtype=np.float64), axis=1) != y_np
    fooled = {m: ATTACKS[m](net, X_np, y_np, eps, **options.get(m, {}))[1] for m in methods}
    any_fooled = np.logical_or.reduce([fooled[m] for m in methods])
    return {
        "eps": eps,
        "n": int(len(y_np)),
        "clean_error": float(clean_wrong.mean()),
        "errors": {m: float(f.mean()) for m, f in fooled.items()},
        "fooled": fooled,
        "any_fooled": any_fooled,
        "error": float(any_fooled.mean()),
    }
