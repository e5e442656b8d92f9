"""Helpers shared by several test modules (plain functions, imported as ``from helpers import ...``; fixtures live
in conftest.py)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4)
def train_small_mnist_net(hidden: int = 30, epochs: int = 15, seed: int = 0, penalty: float = 0.05):
    """A 784-hidden-10 ReLU net trained for a few seconds on the packaged slice (CE + Frobenius penalty), one torch
    thread, seeded, leaving the caller's RNG and thread count alone. Shared by the certificate, attack, LP and
    solver tests: the one small-network trainer of the test suite; cached, since the model is immutable."""
    import torch
    from torch import nn

    from sdpcert import TwoLayerNet, load_mnist_sample

    X, y = load_mnist_sample("train")
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
            opt = torch.optim.Adam(model.parameters(), lr=2e-3)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                order = torch.randperm(len(y_t), generator=gen)
                for lo in range(0, len(order), 100):
                    idx = order[lo:lo + 100]
                    loss = nn.functional.cross_entropy(model(X_t[idx]), y_t[idx])
                    loss = loss + penalty * (model[0].weight.norm() + model[2].weight.norm())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return TwoLayerNet.from_torch(model)


def run_cli(capsys, *argv):
    """``(exit code, stdout, stderr)`` of ``sdpcert ARGV`` run in this process (arguments turned into text)."""
    from sdpcert.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, out, err, *words, quiet_stdout=False):
    """A refusal as the CLI promises it: exit code 2, no traceback, the last line of stderr the only ``error:`` line,
    naming each of ``words``; with ``quiet_stdout``, nothing at all on stdout."""
    assert "Traceback" not in out + err, err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, err
    if quiet_stdout:
        assert out == "", out
    for word in words:
        assert word in lines[-1], (word, lines[-1])
