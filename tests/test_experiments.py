"""sdpcert.experiments: Fig. 3b's rows (attacks vs certificates over eps), their CSV and PNG."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError, load_mnist_sample
from sdpcert.experiments import error_vs_eps, plot_error_vs_eps, write_csv

from helpers import train_small_mnist_net


@pytest.fixture(scope="module")
def rows():
    net = train_small_mnist_net()
    X, y = load_mnist_sample("test", limit=150)
    return error_vs_eps(net, X, y, [0.0, 0.01, 0.03], attack_options={"pgd": {"steps": 10}, "cw": {"steps": 10}})


def test_rows_bound_the_robust_error_from_both_sides(rows):
    assert [row["eps"] for row in rows] == [0.0, 0.01, 0.03]
    for row in rows:
        assert row["n"] == 150 and row["broken"] == 0
        attacks = [row[f"{a}_error"] for a in ("fgsm", "pgd", "cw")]
        assert row["clean_error"] <= min(attacks) and max(attacks) <= row["any_attack_error"]
        for method in ("sdp", "spectral", "frobenius", "lp"):
            assert row["any_attack_error"] <= row[f"{method}_certified_error"] + 1e-12  # float means of 150 flags
    # at eps = 0 every method certifies exactly the correctly classified points
    assert rows[0]["sdp_certified_error"] == pytest.approx(rows[0]["clean_error"])
    sdp = [row["sdp_certified_error"] for row in rows]
    assert sdp == sorted(sdp) and sdp[-1] < 1.0


def test_csv_and_png(rows, tmp_path):
    path = write_csv(rows, tmp_path / "fig3b.csv")
    with path.open() as handle:
        back = list(csv.DictReader(handle))
    assert len(back) == 3 and float(back[1]["pgd_error"]) == rows[1]["pgd_error"]
    png = plot_error_vs_eps(rows, tmp_path / "fig3b.png", title="test", methods=("sdp", "lp"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_radii():
    net = train_small_mnist_net(epochs=1)
    X, y = load_mnist_sample("test", limit=5)
    with pytest.raises(SdpcertError, match="at least one radius"):
        error_vs_eps(net, X, y, [])
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        error_vs_eps(net, X, y, [0.1, -0.1])
    assert np.isfinite(error_vs_eps(net, X, y, [0.01], attacks=("fgsm",))[0]["fgsm_error"])


def test_certificates_command_times_every_method(mnist_dir, tmp_path):
    """``python -m sdpcert.experiments certificates``: every method that applies, over [0, 1], timed, none broken."""
    from sdpcert.certify import methods_for
    from sdpcert.experiments.__main__ import main
    from sdpcert.model import load_pretrained

    code = main(["certificates", "--data", str(mnist_dir), "--limit", "40", "--eps", "0.05,0.1", "--out",
                 str(tmp_path)])
    assert code == 0
    lines = (tmp_path / "certificates.csv").read_text().splitlines()
    header = lines[0].split(",")
    for method in methods_for(load_pretrained("sdp-nn"), every=True):
        assert f"{method}_certified_error" in header and f"{method}_seconds" in header
    assert len(lines) == 3 and (tmp_path / "certificates.png").stat().st_size > 10_000


def test_networks_figure_from_csv(rows, tmp_path):
    from sdpcert.experiments.error_vs_eps import plot_networks_vs_eps, read_csv

    path = write_csv(rows, tmp_path / "a.csv")
    again = read_csv(path)
    assert [r["eps"] for r in again] == [r["eps"] for r in rows] and again[0]["n"] == rows[0]["n"]
    png = plot_networks_vs_eps({"one": again, "two": again}, tmp_path / "nets.png", method="sdp")
    assert png.stat().st_size > 10_000


def test_box_columns_certify_the_ball_within_the_pixel_box():
    """``box_methods``: per-example certificates over the ball intersected with [0, 1] (where the attacks search),
    next to the whole-ball ones, on crown-box-nn (trained for them): proven (nothing broken), and no looser than the
    same method over the whole ball, which contains that set."""
    from sdpcert.model import load_pretrained

    net = load_pretrained("crown-box-nn")
    X, y = load_mnist_sample("test", limit=40)
    row = error_vs_eps(net, X, y, [0.1], methods=("lp",), attacks=("pgd",), attack_options={"pgd": {"steps": 10}},
                       box_methods=("lp", "best"), box_certifier=Certifier(net, input_domain=(0, 1)))[0]
    assert row["broken"] == 0 and row["lp_box_broken"] == 0 and row["best_box_broken"] == 0
    assert row["any_attack_error"] <= row["best_box_certified_error"] <= row["lp_box_certified_error"]
    assert row["lp_box_certified_error"] <= row["lp_certified_error"]
    assert row["lp_box_seconds"] >= 0


def test_box_columns_need_a_box_and_per_example_methods():
    net = train_small_mnist_net(epochs=1)
    X, y = load_mnist_sample("test", limit=5)
    with pytest.raises(SdpcertError, match="box_certifier"):
        error_vs_eps(net, X, y, [0.1], box_methods=("lp",))
    with pytest.raises(SdpcertError, match="box_certifier"):
        error_vs_eps(net, X, y, [0.1], box_methods=("lp",), box_certifier=Certifier(net))
    with pytest.raises(SdpcertError, match="per-example methods.*'sdp'"):
        error_vs_eps(net, X, y, [0.1], box_methods=("sdp",), box_certifier=Certifier(net, input_domain=(0, 1)))
