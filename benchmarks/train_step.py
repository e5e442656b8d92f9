"""Cost of one SDP-NN training step against one NT-NN (cross-entropy) step of the same batch size, in one run.

    python benchmarks/train_step.py [--steps 200] [--threads 1] [--json PATH]

Rows: the mean wall time of a Trainer.step (784-500-10 ReLU net, Adam, batch 100, packaged MNIST slice) for
  NT   cross-entropy,
  SDP  10 x hinge + 0.05 x the dual penalty of the 9 pairs sharing a random class, for several per-step Lanczos
       budgets (TrainConfig.eig_iters; warm started, the solve on a worker thread while torch does the hinge),
  SDP, plain PyTorch: the same step with the penalty's eigenpairs from torch.linalg.eigh on the dense 1285 x 1285
       pair matrices (the off-the-shelf route; what the package uses for CUDA tensors), fewer steps,
and the ratio of each to NT. Target (issue 3): SDP <= 2 x NT.

Each row starts from a fresh net after --warmup untimed steps. The step cost does not depend on how far training
has gone (the Lanczos budget is fixed), except for the plain PyTorch row. The machine has 2 cores and may be shared:
the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from sdpcert import load_mnist_sample
from sdpcert.training import TrainConfig, Trainer, threads_for as torch_threads


def mean_step_ms(config: TrainConfig, X: torch.Tensor, y: torch.Tensor, steps: int, warmup: int,
                 backend: str = "auto") -> float:
    torch.set_num_threads(torch_threads(config))  # as sdpcert.training.train does (sdp: one core for the eigen thread)
    trainer = Trainer(config)
    if trainer.reg is not None:
        trainer.reg.backend = backend
    n, b = len(y), config.batch_size

    def batch(s: int):
        lo = (s * b) % (n - b)
        return X[lo:lo + b], y[lo:lo + b]

    for s in range(warmup):
        trainer.step(*batch(s))
    t0 = time.perf_counter()
    for s in range(steps):
        trainer.step(*batch(warmup + s))
    return 1000.0 * (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="cores per step (TrainConfig.threads: NT gives them all to torch, SDP one to its eigen "
                             "thread)")
    parser.add_argument("--budgets", default="3,8,16", help="eig_iters values to time")
    parser.add_argument("--torch-steps", type=int, default=3, help="steps of the plain PyTorch (dense eigh) row")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    X, y = load_mnist_sample("train", dtype=np.float32)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} torch thread(s); load average at start {os.getloadavg()[0]:.2f}")
    rows = []
    nt = mean_step_ms(TrainConfig(objective="nt", threads=args.threads), X, y, args.steps, args.warmup)
    rows.append({"step": "NT (cross-entropy)", "ms": nt})
    for budget in [int(b) for b in args.budgets.split(",")]:
        ms = mean_step_ms(TrainConfig(objective="sdp", threads=args.threads, eig_iters=budget), X, y, args.steps,
                          args.warmup)
        rows.append({"step": f"SDP, sdpcert, eig_iters={budget}", "ms": ms, "eig_iters": budget})
    ms = mean_step_ms(TrainConfig(objective="sdp", threads=args.threads), X, y, args.torch_steps, 1, backend="torch")
    rows.append({"step": "SDP, plain PyTorch (dense eigh)", "ms": ms})
    print(f"{'step (batch 100)':<36} {'ms':>9} {'x NT':>7}")
    for row in rows:
        row["ratio_to_nt"] = row["ms"] / nt
        print(f"{row['step']:<36} {row['ms']:>9.2f} {row['ratio_to_nt']:>7.2f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"threads": args.threads, "steps": args.steps, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
