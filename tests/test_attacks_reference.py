"""The attacks against an independent implementation: torchattacks (test-only; installed with --no-deps by the README's
test command because its pinned requests/torchvision would replace the CPU torch).

Same model, same budget, same points. FGSM is deterministic and must produce the same points; PGD without a random
start follows the same trajectory, so every point torchattacks fools ours fools too (ours also keeps the best
iterate); with random starts the error rates agree to within a few points. torchattacks has no Carlini-Wagner
l_inf attack, so cw_linf is checked against its PGD and APGD (DLR loss) on the same budget: not weaker than them by
more than the run-to-run spread of random starts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdpcert import load_mnist_sample
from sdpcert.attacks import cw_linf, fgsm, pgd

from helpers import train_small_mnist_net

torchattacks = pytest.importorskip(
    "torchattacks", reason="torchattacks is the test-only reference: pip install --no-deps torchattacks==3.5.1")

N = 300


@pytest.fixture(scope="module")
def setup():
    net = train_small_mnist_net()
    X, y = load_mnist_sample("test", limit=N)
    # torchattacks works on image batches (n, c, h, w): the reference model flattens them first
    model = torch.nn.Sequential(torch.nn.Flatten(), net.to_torch(torch.float64)).eval()
    return net, model, X.astype(np.float64), y


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _theirs(attack, model, X, y):
    xt, yt = torch.from_numpy(X).reshape(-1, 1, 28, 28), torch.from_numpy(y).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        adv = attack(xt, yt).detach()
    with torch.no_grad():
        fooled = (model(adv).argmax(dim=1) != yt).numpy()
    return adv.reshape(len(y), -1).numpy(), fooled


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_fgsm_matches_torchattacks(setup, eps):
    net, model, X, y = setup
    ours, fooled = fgsm(net, X, y, eps)
    theirs, their_fooled = _theirs(torchattacks.FGSM(model, eps=eps), model, X, y)
    correct = net.predict(X) == y  # ours returns a misclassified clean point unchanged; both count it as fooled
    np.testing.assert_allclose(ours[correct], theirs[correct], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fooled, their_fooled)


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_without_random_start_contains_torchattacks(setup, eps):
    net, model, X, y = setup
    steps, alpha = 20, eps / 8
    _, fooled = pgd(net, X, y, eps, steps=steps, step_size=alpha, random_start=False)
    _, their_fooled = _theirs(torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False),
                              model, X, y)
    assert their_fooled.sum() > 0.05 * N  # a real attack on this net, not a vacuous comparison
    missed = np.flatnonzero(their_fooled & ~fooled)
    assert missed.size <= 1, f"torchattacks' PGD fooled points {missed} that ours did not"


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_and_cw_error_rates_agree_with_torchattacks(setup, eps):
    net, model, X, y = setup
    steps = 40
    alpha = 2.5 * eps / steps
    ours_pgd = pgd(net, X, y, eps, steps=steps, step_size=alpha)[1].mean()
    ours_cw = cw_linf(net, X, y, eps, steps=steps, step_size=alpha)[1].mean()
    their_pgd = _theirs(torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True),
                        model, X, y)[1].mean()
    their_apgd = _theirs(torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, loss="dlr", seed=0),
                         model, X, y)[1].mean()
    assert abs(ours_pgd - their_pgd) <= 0.03, (ours_pgd, their_pgd)
    assert ours_cw >= max(their_pgd, their_apgd) - 0.03, (ours_cw, their_pgd, their_apgd)
