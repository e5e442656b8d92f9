"""The SDP-NN regularizer: an ``nn.Module`` that owns the dual variables c_ij and the pair sampling.

``loss = task_loss + reg(W, V, reg.sample_pairs_sharing_class())`` trains the weights and the c_ij together (paper
§4, docs/design.md §2); :meth:`DualCertificateRegularizer.certified_upper` turns the current c into PROVEN upper
bounds on the pair SDP values (the paper's dual certificate). The penalty itself is :func:`.penalty.pair_dual_penalty`.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from typing import Any, Optional

import numpy as np
import torch

from ..errors import NonFiniteError, SdpcertError, ShapeError
from .._checks import INT32_MAX, check_pairs, check_threads, int_in_range, positive_int
from .eigen import BACKENDS, EigenWarmStart, Eigenpairs, choose_backend, require_core, top_eigenpairs
from .penalty import (certified_dual_bounds, check_eigenpairs, eigen_worker, pair_dual_penalty, penalty_gradients,
                      penalty_values, weighted_pair_penalty)
from .threads import ContentionMonitor, CoreReservation, ReleasingFuture, single_torch_thread, timed_solve

# Process-wide, like torch's thread settings they manage (and kept off the module, which must stay picklable).
_RESERVATION = CoreReservation()
_MONITOR = ContentionMonitor()

__all__ = ["DualCertificateRegularizer"]


class DualCertificateRegularizer(torch.nn.Module):
    """Owns the dual variables c_ij (one row of length D per class pair) and computes the SDP-NN penalty

        weight * sum_p w_p * (D * max(lambda_max(M_p - diag c_p), 0) + sum_k max(c_pk, 0))

    Usage: ``loss = task_loss + reg(model[0].weight, model[2].weight)`` (W: (m, d), V: (k, m)); put
    ``reg.parameters()`` in the optimizer so c is trained with the weights. Pairs are unordered (S_ij = S_ji with
    the same c, since flipping the sign of the t block is a similarity): ``(j, i)`` uses the row of ``(i, j)``.
    ``forward(W, V, pairs_subset)`` restricts to some pairs, e.g. ``reg.sample_pairs_sharing_class(gen)``
    (the paper's step: k - 1 pairs sharing a random class).

    The forward value is a training estimate. Report :meth:`certified_upper` (proven bounds on S_ij) or
    :meth:`certified_error` / :meth:`certify` (proven certificates on data) instead.

    Threads (:mod:`sdpcert.torch.threads`): the op's own work runs with torch on one intra-op thread and the eigen
    solve on ``threads`` core threads (default 1: no OpenMP team whose barriers stall when the cores are
    oversubscribed; 0, all cores, saved 1.3 ms of an 11 ms step on a quiet 2-core machine and cost 10-200x on a
    busy one), whatever the caller set with ``torch.set_num_threads``; the async paths hold torch's threads
    to one fewer than the cores while a solve is in flight; and one ``ThreadOversubscriptionWarning`` per process
    says to call ``torch.set_num_threads(1)`` when torch's own threads meet busy cores (the caller's model is
    torch's work, not this op's).
    """

    def __init__(self, k: int, d: int, m: int, pairs: Any = "all", weight: float = 0.05, init_c: float = 0.0,
                 backend: str = "auto", tol: float = 1e-6, max_iter: int = 200, dense_fallback: bool = False,
                 threads: int = 1) -> None:
        super().__init__()
        k, d, m = positive_int("k", k), positive_int("d", d), positive_int("m", m)
        if k < 2:
            raise SdpcertError(f"k must be >= 2 classes; got {k}")
        for name, val in (("weight", weight), ("init_c", init_c), ("tol", tol)):
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, float, np.integer, np.floating)):
                raise SdpcertError(f"{name} must be a real number; got {val!r}")
        if not np.isfinite(weight) or weight < 0:
            raise SdpcertError(f"weight must be finite and >= 0; got {weight!r}")
        if not np.isfinite(init_c):
            raise NonFiniteError(f"init_c must be finite; got {init_c!r}")
        if not (np.isfinite(tol) and tol > 0):
            raise SdpcertError(f"tol must be positive and finite; got {tol!r}")
        max_iter = int_in_range("max_iter", max_iter, 1, INT32_MAX)
        threads = check_threads(threads)
        if backend not in BACKENDS:
            raise SdpcertError(f"backend must be 'auto', 'core' or 'torch'; got {backend!r}")
        self.k, self.d, self.m = int(k), int(d), int(m)
        self.D = 1 + self.m + self.d
        if isinstance(pairs, str):
            if pairs != "all":
                raise SdpcertError(f"pairs must be 'all' or a list of (i, j); got {pairs!r}")
            pair_arr = np.array(list(itertools.combinations(range(self.k), 2)), dtype=np.int64)
        else:
            pair_arr = check_pairs(pairs, self.k)
        keys = [tuple(sorted((int(i), int(j)))) for i, j in pair_arr]
        if len(set(keys)) != len(keys):
            raise SdpcertError("pairs lists the same unordered class pair twice")
        self.pairs = np.array(keys, dtype=np.int64)  # canonical order i < j
        self._row = {key: r for r, key in enumerate(keys)}
        self.weight = float(weight)
        self.backend = backend
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        # Core threads of the synchronous forward's eigen solve (0: all; 1 by default, see the class docstring).
        self.threads = int(threads)
        # Training needs a good ascent direction each step, not an exact eigenpair: a bounded Lanczos run (warm
        # started from the previous step) keeps the step cost bounded as training clusters the top of the spectrum,
        # where a dense fallback cost seconds per pair (measured in an SDP-NN run). Reported numbers never come from
        # here (certified_upper).
        self.dense_fallback = bool(dense_fallback)
        # The step needs an ascent direction, not digits: float32 products with W halve the cost of a Lanczos step.
        self.float32_matvecs = True
        self.c = torch.nn.Parameter(torch.full((len(keys), self.D), float(init_c)))
        self.register_buffer("pair_weights", torch.ones(len(keys)))
        self.warm_start = EigenWarmStart()
        self.last_info: dict[str, Any] = {}

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def rows_for(self, pairs: Any) -> np.ndarray:
        """Row indices of c for the given (i, j) pairs (either order); error for pairs the module does not own."""
        arr = check_pairs(pairs, self.k)
        rows = []
        for i, j in arr:
            key = (min(int(i), int(j)), max(int(i), int(j)))
            if key not in self._row:
                raise SdpcertError(f"pair {key} is not one of this regularizer's pairs")
            rows.append(self._row[key])
        return np.array(rows, dtype=np.int64)

    def set_pair_weights(self, weights: Any) -> None:
        """Per-pair weights w_p: a (P,) array in the order of ``self.pairs``, or a dict {(i, j): w}."""
        if isinstance(weights, dict):
            w = self.pair_weights.detach().clone()
            for key, val in weights.items():
                w[int(self.rows_for([key])[0])] = float(val)
        else:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=self.pair_weights.dtype)
            if tuple(w.shape) != (self.num_pairs,):
                raise ShapeError(f"pair weights must have shape ({self.num_pairs},); got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise SdpcertError("pair weights must be finite and >= 0")
        self.pair_weights.copy_(w.to(self.pair_weights.device))

    def sample_pairs_sharing_class(self, generator: Optional[torch.Generator] = None) -> list[tuple[int, int]]:
        """The k - 1 pairs (i, j), j != i, sharing a class i drawn uniformly (pairs this module doesn't own dropped)."""
        i = int(torch.randint(self.k, (1,), generator=generator).item())
        out = []
        for j in range(self.k):
            if j != i and (min(i, j), max(i, j)) in self._row:
                out.append((i, j))
        return out

    def _check_weights(self, W: torch.Tensor, V: torch.Tensor) -> None:
        if not isinstance(W, torch.Tensor) or not isinstance(V, torch.Tensor):
            raise SdpcertError("W and V must be torch tensors")
        if tuple(W.shape) != (self.m, self.d):
            raise ShapeError(f"W must have shape (m, d) = ({self.m}, {self.d}); got {tuple(W.shape)}")
        if tuple(V.shape) != (self.k, self.m):
            raise ShapeError(f"V must have shape (k, m) = ({self.k}, {self.m}); got {tuple(V.shape)}")

    def _solve(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray, threads: Optional[int] = None,
               monitor: Optional[ContentionMonitor] = None, torch_threads: int = 1) -> Eigenpairs:
        """The eigen solve for c[rows]; ``threads`` core threads (None: ``self.threads``). With ``monitor`` (the
        synchronous forward, one core thread) its wall and CPU time are recorded against ``torch_threads``."""
        threads = self.threads if threads is None else threads
        with torch.no_grad():
            c = self.c.detach().index_select(0, torch.as_tensor(rows, device=self.c.device))
            c = c.to(device=W.device, dtype=W.dtype)
        timed = monitor is not None and threads == 1 and choose_backend(self.backend, W.device) == "core"
        with timed_solve(monitor if timed else None, torch_threads):
            return top_eigenpairs(W.detach(), V.detach(), c, self.pairs[rows], backend=self.backend,
                                  warm_start=self.warm_start, tol=self.tol, max_iter=self.max_iter,
                                  dense_fallback=self.dense_fallback, exact_residuals=False, threads=threads,
                                  float32_matvecs=self.float32_matvecs)

    def solve_async(self, W: torch.Tensor, V: torch.Tensor,
                    pairs_subset: Any = None) -> "concurrent.futures.Future[Eigenpairs]":
        """Start this step's eigen solve on a worker thread; pass the future to ``forward(..., eigenpairs=...)``.

        On a machine with a spare core the solve then costs (almost) nothing: the C++ Lanczos releases the GIL and
        runs while torch computes the task loss and its backward. Until the result is taken, torch's intra-op
        threads on this thread are held to one fewer than the cores (restored when ``forward`` or ``result()``
        takes it here). W, V and c must not change in place before the result is used (an optimizer step belongs
        after the forward). The torch backend (CUDA) solves at once."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        return self._submit(W.device, self._solve, W, V, rows)

    def value_and_grads(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                        threads: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """``(value, dW, dV, dc, rows)``: this module's forward value and its gradients w.r.t. W, V and c[rows],
        without autograd -- the same numbers as ``forward(...).backward()`` (one shared gradient function), for a
        training step that computes them on a worker thread (:meth:`value_and_grads_async`) and adds them to the
        .grad fields itself. No graph is built and nothing is written to any .grad here. ``threads``: core threads
        of the eigen solve (0: the module's ``threads``); torch's own work here runs on one thread."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        with single_torch_thread(W.device.type == "cpu"):
            if self._fused_step_applies(W):
                return self._value_and_grads_core(W, V, rows)
            return self._value_and_grads_solved(W, V, rows, threads)

    def _value_and_grads_solved(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray, threads: int) -> tuple:
        eig = self._solve(W, V, rows, threads if threads else None)
        with torch.no_grad():
            rows_t = torch.as_tensor(rows, device=self.c.device)
            c = self.c.detach().index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
            w = self.pair_weights.index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
            g = self.weight * w
            lam, u = eig.values.to(W.device, W.dtype), eig.vectors.to(W.device, W.dtype)
            pairs_idx = torch.as_tensor(self.pairs[rows], device=W.device)
            value = (g * penalty_values(c, lam)).sum()
            dW, dV, dc = penalty_gradients(W.detach(), V.detach(), c, pairs_idx, lam, u, g)
        self.last_info = dict(eig.info)
        return value, dW, dV, dc, rows

    def _fused_step_applies(self, W: torch.Tensor) -> bool:
        """The one-call C++ path: core backend, float32 CPU weights, float32 products, no dense fallback."""
        return (choose_backend(self.backend, W.device) == "core" and W.dtype == torch.float32
                and self.float32_matvecs and not self.dense_fallback)

    def _value_and_grads_core(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray) -> tuple:
        # Inputs are gathered with a handful of small ops; everything else is one C++ call without the GIL.
        pairs = self.pairs[rows]
        with torch.no_grad():
            rows_t = torch.as_tensor(rows, device=self.c.device)
            c64 = self.c.detach().index_select(0, rows_t).to(torch.float64).numpy()
            g = (self.weight * self.pair_weights.index_select(0, rows_t)).to(torch.float64).numpy()
            W32 = W.detach().contiguous().numpy()
            V64 = V.detach().to(torch.float64).numpy()
        start = self.warm_start.start_for(pairs, self.D)
        core = require_core("the fused training step needs")
        out = core.pair_penalty_step(W32, V64, pairs, c64, g, start=start, tol=self.tol, max_iter=self.max_iter)
        info = {"status": list(out["status"]), "iterations": np.asarray(out["iterations"]),
                "residuals": np.asarray(out["residuals"]), "values": np.asarray(out["values"]), "backend": "core",
                "pairs": pairs}
        self.warm_start.update(pairs, np.asarray(out["vectors"]), info)
        self.last_info = info
        value = torch.tensor(float(out["value"]), dtype=W.dtype)
        dW = torch.from_numpy(np.asarray(out["dW"]))
        dV = torch.from_numpy(np.asarray(out["dV"])).to(V.dtype)
        dc = torch.from_numpy(np.asarray(out["dc"])).to(self.c.dtype)
        return value, dW, dV, dc, rows

    def _submit(self, device: torch.device, fn: Any, *args: Any) -> "concurrent.futures.Future":
        """``fn(*args, threads)`` on the worker thread with one Lanczos thread, torch's threads here held to one
        fewer than the cores until the result is taken (:class:`~sdpcert.torch.threads.CoreReservation`); or at
        once, as a completed future, for the torch backend (CUDA kernels are asynchronous anyway)."""
        if choose_backend(self.backend, device) != "core":
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(fn(*args, 0))
            return done
        _RESERVATION.acquire()
        try:
            inner = eigen_worker().submit(fn, *args, 1)
        except BaseException:
            _RESERVATION.release()
            raise
        return ReleasingFuture(inner, _RESERVATION.release)

    def value_and_grads_async(self, W: torch.Tensor, V: torch.Tensor,
                              pairs_subset: Any = None) -> "concurrent.futures.Future":
        """:meth:`value_and_grads` on the worker thread (one Lanczos thread; torch's threads here held to one fewer
        than the cores until ``result()`` is called on this thread). W, V, c and the pair weights must not change in
        place before the result is used."""
        return self._submit(W.device, self.value_and_grads, W, V, pairs_subset)

    def _prepare(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any,
                 eigenpairs: Any) -> tuple[np.ndarray, Any, int]:
        """(rows of the chosen pairs, eigenpairs or None, the caller's torch thread count), weights checked."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        if isinstance(eigenpairs, concurrent.futures.Future):
            eigenpairs = eigenpairs.result()  # taken here: restores torch's threads if solve_async held them
        return rows, eigenpairs, torch.get_num_threads()

    def per_pair(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                 eigenpairs: Any = None) -> tuple[torch.Tensor, np.ndarray]:
        """(values (Q,), rows (Q,)) of the unweighted penalty for the chosen pairs (all owned pairs by default).

        eigenpairs: an :class:`Eigenpairs` or the future from :meth:`solve_async` for the same pairs."""
        rows, eigenpairs, caller_threads = self._prepare(W, V, pairs_subset, eigenpairs)
        with single_torch_thread(W.device.type == "cpu"):
            return self._per_pair(W, V, rows, eigenpairs, caller_threads)

    def _per_pair(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray, eigenpairs: Any,
                  caller_threads: int) -> tuple[torch.Tensor, np.ndarray]:
        if eigenpairs is None:
            eigenpairs = self._solve(W, V, rows, monitor=_MONITOR, torch_threads=caller_threads)
        rows_t = torch.as_tensor(rows, device=self.c.device)
        c = self.c.index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
        info: dict[str, Any] = {}
        values = pair_dual_penalty(W, V, c, self.pairs[rows], info=info, eigenpairs=eigenpairs)
        self.last_info = info
        return values, rows

    def forward(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                eigenpairs: Any = None) -> torch.Tensor:
        """``weight * sum_p w_p penalty_p`` over the chosen pairs (all owned pairs by default), differentiable
        w.r.t. W, V and c; the value of ``(w * per_pair(...)[0]).sum() * weight`` as one autograd node whose
        backward runs on one torch thread. eigenpairs: as for :meth:`per_pair`."""
        rows, eigenpairs, caller_threads = self._prepare(W, V, pairs_subset, eigenpairs)
        with single_torch_thread(W.device.type == "cpu"):
            pairs = self.pairs[rows]
            if eigenpairs is None:
                eigenpairs = self._solve(W, V, rows, monitor=_MONITOR, torch_threads=caller_threads)
            else:
                rows_t = torch.as_tensor(rows, device=self.c.device)
                check_eigenpairs(W, V, self.c.detach().index_select(0, rows_t).to(W.device, W.dtype), pairs,
                                 eigenpairs)
            self.last_info = dict(eigenpairs.info)
            w = self.pair_weights.index_select(0, torch.as_tensor(rows, device=self.pair_weights.device))
            return weighted_pair_penalty(W, V, self.c, rows, pairs, eigenpairs, w, self.weight)

    def certified_upper(self, W: Any, V: Any, pairs_subset: Any = None) -> np.ndarray:
        """PROVEN upper bounds on the pair SDP values S_ij from the current c (float64 numpy, (Q,)).

        This is the rigorous "dual certificate" of eq. 16: lambda_max is bounded above by the core's shifted
        Cholesky proof, never by the Lanczos estimate used in training. inf where no proof was found."""
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        c = self.c.detach()[torch.as_tensor(rows, device=self.c.device)]
        return certified_dual_bounds(W, V, c, self.pairs[rows])["dual_bound"]

    # ------------------------------------------------------------------------------------------------ certificates
    def certified_growth(self, net: Any) -> tuple[np.ndarray, np.ndarray]:
        """(G, S) for the network ``net`` (a ``TwoLayerNet`` or the torch model ``TwoLayerNet.from_torch`` takes)
        from the current c: S (k, k) PROVEN upper bounds on the pair SDP values (:meth:`certified_upper`; +inf for a
        pair this module does not own or could not bound), G = ``sdp_growth(net, S)`` (+inf where S is)."""
        from ..certify import sdp_growth

        net = self._as_net(net)
        s_upper = self.certified_upper(net.W, net.V)
        S = np.full((self.k, self.k), np.inf)
        np.fill_diagonal(S, 0.0)  # a class is not its own adversary; the diagonal is never used
        for (i, j), s in zip(self.pairs, s_upper):
            S[i, j] = S[j, i] = s
        return sdp_growth(net, S), S

    def certify(self, net: Any, X: Any, y: Any, eps: float) -> Any:
        """PROVEN per-example certificates at l_inf radius ``eps`` from the current c (the paper's dual certificate,
        eq. 16), as a :class:`~sdpcert.certify.CertificationResult` (method "dual"): the proven bounds of
        :meth:`certified_growth` through ``sdpcert.certify.certify_with_growth`` (float64 logits with their
        rounding-error bound). No Lanczos estimate enters. An example whose label shares a pair with no proven bound
        (a pair this module does not own, or one without a proof) is not certified (worst margin +inf).

        ``net``: the trained network -- a ``TwoLayerNet`` or the torch model (``nn.Sequential([Flatten,] Linear,
        ReLU|Tanh|Sigmoid, Linear)``, read with ``TwoLayerNet.from_torch``); its weights must be the W, V the c was
        trained with. ``X`` (n, d) inputs, ``y`` (n,) labels, as for ``Certifier.certify``."""
        import dataclasses

        from ..certify import certify_with_growth

        net = self._as_net(net)
        G, _ = self.certified_growth(net)
        off = ~np.eye(self.k, dtype=bool)
        unbounded = off & ~np.isfinite(G)
        if not unbounded.any():
            return certify_with_growth(net, X, y, eps, G, method="dual")
        # certify_with_growth takes finite growth only: compute with 0 in the unbounded entries, then mark every
        # example whose label meets one of them as not certified. An example with label y uses only G[:, y].
        result = certify_with_growth(net, X, y, eps, np.where(unbounded, 0.0, G), method="dual")
        labels = result.labels
        hit = unbounded[:, labels].T  # (n, k): pairs (j, y_n) without a bound
        hit_any = hit.any(axis=1)
        worst = np.where(hit_any, np.inf, result.worst_margin)
        worst_class = np.where(hit_any, np.argmax(hit, axis=1), result.worst_class).astype(np.int64)
        return dataclasses.replace(result, worst_margin=worst, worst_class=worst_class)

    def certified_error(self, net: Any, X: Any, y: Any, eps: float) -> float:
        """The PROVEN certified error at radius ``eps`` from the current c: the fraction of (X, y) that
        :meth:`certify` does not certify -- an upper bound on the robust error of ``net`` (never an estimate).
        Arguments as for :meth:`certify`."""
        return self.certify(net, X, y, eps).certified_error

    def _as_net(self, net: Any) -> Any:
        from ..model import TwoLayerNet

        if isinstance(net, torch.nn.Module):
            net = TwoLayerNet.from_torch(net)
        if not isinstance(net, TwoLayerNet):
            raise SdpcertError(f"net must be a TwoLayerNet or a torch nn.Sequential; got {type(net).__name__}")
        if (net.d, net.m, net.k) != (self.d, self.m, self.k):
            raise ShapeError(f"net is {net.d}-{net.m}-{net.k} but this regularizer is for "
                             f"{self.d}-{self.m}-{self.k} (d-m-k)")
        return net
