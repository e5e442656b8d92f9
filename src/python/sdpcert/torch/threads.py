"""How the training penalty shares the cores with torch: the op's own work on one thread, a core reserved for an
eigen solve in flight, and a one-time warning when torch's intra-op threads meet oversubscribed cores.

Why (measured on the 2-core development machine with ``/tmp``-style scripts that time README's loop, 784-500-10,
batch 100, with HEAD's op and this one in the same run): torch's intra-op parallelism and the core's are OpenMP
teams whose threads spin at barriers; when more threads are busy than there are cores (other jobs, or a team's
worker still spinning), a team waits for a descheduled member at every parallel region. With the machine busy, a
step took 13-16 ms with ``torch.set_num_threads(1)`` and 38-520 ms (median; p90 up to 800 ms) with torch's default
of 2 threads; the penalty's own part, when its solve ran on a 2-thread team and its backward on torch's, 11 ms
against 25-240 ms (p90 400 ms). With the changes below it took 9 ms against 14 ms (p90 27 ms), the step 14 ms
against 26 ms (p90 52 ms). On the same machine when quiet, one core thread for the solve costs 1.3 ms a step
(penalty 8.0 ms instead of 6.7 ms with 2 threads): ``DualCertificateRegularizer(threads=0)`` takes all cores for a
dedicated machine. So:

- :func:`single_torch_thread`: the op's own torch work (gathering c, the analytic backward) runs with torch on
  one thread and the compiled eigen solve on one thread (no team, no barrier), whatever the caller set; setting
  torch's count costs well under a microsecond.
- :class:`CoreReservation`: while an eigen solve runs on the worker thread (``solve_async``,
  ``value_and_grads_async``), torch's intra-op threads on the submitting thread are held to (usable cores - 1)
  and restored when the result is taken, on that thread.
- :class:`ContentionMonitor`: the single-threaded solve's share of a core (thread CPU time / wall time) measures
  oversubscription directly; when torch runs more than one intra-op thread and the solve got under 60% of a core
  over its last 8 calls (measured on the busy 2-core machine: 65-100% with torch on one thread, 30-55% with
  torch on 2 threads), one :class:`ThreadOversubscriptionWarning` per process says what
  to set. The rest of the step (the caller's model and optimizer) is torch's work, and only the caller can set its
  threads: ``torch.set_num_threads(1)``, or ``OMP_WAIT_POLICY=PASSIVE`` in the environment before Python starts
  (OpenMP threads then sleep instead of spinning at barriers; measured: a step at 2 threads 1.1x the step at 1).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import statistics
import threading
import time
import warnings
from typing import Any, Callable, Iterator, Optional

import torch

__all__ = ["ThreadOversubscriptionWarning", "usable_cores", "single_torch_thread", "CoreReservation",
           "ContentionMonitor", "ReleasingFuture", "timed_solve"]


class ThreadOversubscriptionWarning(RuntimeWarning):
    """torch runs several intra-op threads on cores that are already busy: training steps slow down many times."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def single_torch_thread(active: bool = True) -> Iterator[None]:
    """torch on one intra-op thread inside the block (this thread only), the previous count restored after."""
    before = torch.get_num_threads() if active else 1
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)


class CoreReservation:
    """Holds torch's intra-op threads to ``usable_cores() - 1`` while eigen solves are in flight on the worker
    thread, so that torch's team and the eigen thread never need more cores than there are.

    :meth:`acquire` on the submitting thread (per solve), :meth:`release` when its result is taken; the count is
    restored when the last solve in flight is released on the thread that lowered it (torch's count is a setting of
    each thread). A release on another thread only counts the solve as done; the owner's next release restores.
    Nothing changes when torch already leaves a core free or there is a single core (one busy thread per core
    then, and no team to stall)."""

    def __init__(self, cores: Optional[Callable[[], int]] = None) -> None:
        self._cores = cores or usable_cores
        self._lock = threading.Lock()
        self._in_flight = 0
        self._saved: Optional[int] = None
        self._owner: Optional[int] = None

    @property
    def held(self) -> bool:
        """Whether torch's thread count is lowered now."""
        return self._saved is not None

    def acquire(self) -> None:
        cores = self._cores()
        with self._lock:
            self._in_flight += 1
            n = torch.get_num_threads()
            if self._saved is None and cores >= 2 and n + 1 > cores:
                self._saved, self._owner = n, threading.get_ident()
                torch.set_num_threads(cores - 1)

    def release(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if self._in_flight == 0 and self._saved is not None and threading.get_ident() == self._owner:
                torch.set_num_threads(self._saved)
                self._saved = self._owner = None


class ReleasingFuture(concurrent.futures.Future):
    """A future that mirrors ``inner`` and calls ``on_taken`` once, when its result (or exception) is first taken
    with :meth:`result` -- on the thread that takes it."""

    def __init__(self, inner: "concurrent.futures.Future", on_taken: Callable[[], None]) -> None:
        super().__init__()
        self._on_taken: Optional[Callable[[], None]] = on_taken
        inner.add_done_callback(self._relay)

    def _relay(self, inner: "concurrent.futures.Future") -> None:
        if self.cancelled():
            return
        if inner.cancelled():
            self.cancel()
            return
        exc = inner.exception()
        if exc is not None:
            self.set_exception(exc)
        else:
            self.set_result(inner.result())

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            return super().result(timeout)
        finally:
            if self.done() and self._on_taken is not None:
                on_taken, self._on_taken = self._on_taken, None
                on_taken()


class ContentionMonitor:
    """Records the wall and thread-CPU time of single-threaded eigen solves; warns once per process (all monitors
    together) when torch runs more than one intra-op thread and the solves got less than ``share`` of a core over
    the last ``window`` calls of at least ``min_seconds`` each."""

    _warned = False  # one warning per process
    _warned_lock = threading.Lock()

    def __init__(self, window: int = 8, share: float = 0.6, min_seconds: float = 2e-3) -> None:
        self.window, self.share, self.min_seconds = int(window), float(share), float(min_seconds)
        self._shares: collections.deque = collections.deque(maxlen=self.window)

    @property
    def recent_share(self) -> Optional[float]:
        """Median share of a core over the recorded window, or None before any record."""
        return statistics.median(self._shares) if self._shares else None

    def record(self, wall: float, cpu: float, torch_threads: Optional[int] = None) -> None:
        n = torch.get_num_threads() if torch_threads is None else int(torch_threads)
        if n <= 1:  # torch has no team to stall; the caller already did what the warning would say
            self._shares.clear()
            return
        if wall < self.min_seconds:
            return
        self._shares.append(min(1.0, cpu / wall))
        if len(self._shares) < self.window or ContentionMonitor._warned:
            return
        share = statistics.median(self._shares)
        if share >= self.share:
            return
        with ContentionMonitor._warned_lock:
            if ContentionMonitor._warned:
                return
            ContentionMonitor._warned = True
        cores = usable_cores()
        warnings.warn(
            f"sdpcert.torch: the cores are oversubscribed (the penalty's single-threaded eigen solve got {share:.0%} "
            f"of a core over its last {len(self._shares)} calls) while torch runs {n} intra-op threads on {cores} "
            f"core{'s' if cores != 1 else ''}; torch's parallel regions then wait for descheduled threads and a "
            f"training step can take 4-50x longer (measured on 2 busy cores: 13-24 ms -> 50-800 ms). Call "
            f"torch.set_num_threads(1) before training (or fewer threads than idle cores), or start Python with "
            f"OMP_WAIT_POLICY=PASSIVE.",
            ThreadOversubscriptionWarning, stacklevel=4)


@contextlib.contextmanager
def timed_solve(monitor: Optional[ContentionMonitor], torch_threads: int) -> Iterator[None]:
    """Times the block (wall and this thread's CPU) into ``monitor`` (nothing when it is None)."""
    if monitor is None:
        yield
        return
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    yield
    monitor.record(time.perf_counter() - wall0, time.thread_time() - cpu0, torch_threads)
