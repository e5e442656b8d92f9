"""asv benchmarks of one training step (batch 100, 784-500-10 ReLU, packaged MNIST slice, one torch thread): the
SDP-NN step against the NT-NN (cross-entropy) step it is compared with (issue 3: SDP <= 2 x NT), and the SDP step
with the penalty's eigenpairs from torch's dense eigh (the plain-PyTorch route; a few steps only).
``benchmarks/train_step.py`` prints the same comparison as ratios in one run."""

from __future__ import annotations

import numpy as np
import torch

from sdpcert import load_mnist_sample
from sdpcert.training import TrainConfig, Trainer


class TrainStep:
    params = (["nt", "sdp", "sdp-torch-eigh"],)
    param_names = ["objective"]
    number = 10
    repeat = (3, 10, 30.0)
    warmup_time = 0
    timeout = 300

    def setup(self, objective):
        if objective == "sdp-torch-eigh":
            self.number = 1
        torch.set_num_threads(1)
        X, y = load_mnist_sample("train", dtype=np.float32)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.trainer = Trainer(TrainConfig(objective="nt" if objective == "nt" else "sdp"))
        if objective == "sdp-torch-eigh":
            self.trainer.reg.backend = "torch"
        self.s = 0
        for _ in range(3):
            self.time_step(objective)

    def time_step(self, objective):
        lo = (self.s * 100) % (len(self.y) - 100)
        self.s += 1
        parts = self.trainer.step(self.X[lo:lo + 100], self.y[lo:lo + 100])
        assert np.isfinite(parts["loss"])
