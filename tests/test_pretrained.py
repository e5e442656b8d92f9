"""The packaged SDP-NN: it loads, it is what its description says, its certificates survive every attack, and the
command line takes its name; plus the compact (float32) model files it is stored in."""

from __future__ import annotations

import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.attacks import evaluate_attacks
from sdpcert.cli import main
from sdpcert.errors import ModelFileError
from sdpcert.model.pretrained import available, load_model, load_pretrained, pretrained_info


@pytest.fixture(scope="module")
def sdp_nn():
    return load_pretrained("sdp-nn")


@pytest.fixture(scope="module")
def sample_certificates(sdp_nn):
    X, y = load_mnist_sample("test")
    certifier = Certifier(sdp_nn)
    return X, y, certifier, certifier.certify_grid(X, y, [0.05, 0.1], ["sdp", "lp"])


def test_packaged_model_matches_its_description(sdp_nn):
    assert "sdp-nn" in available()
    info = pretrained_info("sdp-nn")
    assert sdp_nn.fingerprint() == info["fingerprint"]
    assert (sdp_nn.d, sdp_nn.m, sdp_nn.k, sdp_nn.activation) == (784, 500, 10, "relu")
    assert info["trained_with"]["config"]["objective"] == "sdp"
    evaluation = info["evaluation"]
    assert evaluation["n"] == 10000 and evaluation["eps"] == 0.1
    assert evaluation["certified_points_broken"] == {"sdp": 0, "lp": 0}
    assert evaluation["clean_error"] <= evaluation["attack_errors"]["pgd"] <= evaluation["certified_error"]["sdp"]


def test_packaged_model_certificates_survive_every_attack(sample_certificates):
    """Soundness on the shipped model, on the 1000 packaged test images: no point certified by the exact pair SDPs
    (or the LP bound) is broken by FGSM, PGD or CW."""
    X, y, certifier, certs = sample_certificates
    assert all(status == "converged" for status in certifier.pair_bounds().status)
    for eps in (0.05, 0.1):
        attacks = evaluate_attacks(certifier.net, X, y, eps,
                                   options={"pgd": {"steps": 40, "restarts": 2}, "cw": {"steps": 40}})
        for method in ("sdp", "lp"):
            result = certs[(eps, method)]
            broken = np.flatnonzero(result.certified & attacks["any_fooled"])
            assert broken.size == 0, f"eps {eps}, {method}: certified points {broken[:10]} broken"
            assert attacks["error"] <= result.certified_error
    # a real robust model: most of the sample is certified at the training radius
    assert certs[(0.1, "sdp")].certified_error < 0.6


def test_cli_takes_the_packaged_name(capsys, tmp_path):
    code = main(["certify", "sdp-nn", "--eps", "0.1", "--limit", "50", "--methods", "lp"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "sdp-nn" in captured.out
    # a file of that name wins over the packaged model
    other = TwoLayerNet(np.eye(784)[:3], np.zeros(3), np.ones((10, 3)), np.zeros(10))
    path = other.save(tmp_path / "sdp-nn")
    assert load_model(str(path)).fingerprint() == other.fingerprint()


def test_unknown_names_give_clear_errors():
    with pytest.raises(SdpcertError, match="no packaged model named 'sdp-mn'; packaged: .*sdp-nn"):
        load_pretrained("sdp-mn")
    with pytest.raises(ModelFileError, match="does not exist .*nor is it a packaged model: .*sdp-nn"):
        load_model("sdp-mn")


def test_compact_save_is_exact_and_refuses_float64_weights(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in ((7, 5), (7,), (3, 7), (3,))]
    net = TwoLayerNet(*weights)
    full = net.save(tmp_path / "full.npz")
    small = net.save(tmp_path / "small.npz", compact=True)
    again = TwoLayerNet.load(small)
    assert again.fingerprint() == net.fingerprint()
    assert small.stat().st_size < full.stat().st_size
    with np.load(small) as archive:
        assert archive["W"].dtype == np.float32
    wide = TwoLayerNet(weights[0].astype(np.float64) + 1e-12, *weights[1:])
    with pytest.raises(SdpcertError, match=r"\['W'\] are not exactly float32"):
        wide.save(tmp_path / "wide.npz", compact=True)
    assert not (tmp_path / "wide.npz").exists()
