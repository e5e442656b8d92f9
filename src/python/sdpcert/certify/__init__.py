"""Certificates: from a network's weights to proven per-example bounds (weights -> pair SDP values -> growth
coefficients -> margins), one module per step.

- ``rounding.py``: the floating-point rounding model every rigorous bound uses (and the flush-to-zero guard).
- ``pair_sdp.py``: the pair SDP values S_ij from the C++ core (``PairBounds``) and their bounded cache.
- ``growth.py``: proven (k, k) growth coefficients G per method (sdp, spectral, frobenius).
- ``margins.py``: per-example worst-margin bounds from G, with the forward pass's rounding error bounded.
- ``box.py``: each example's region (the ball, or the ball intersected with the input domain) and proven
  pre-activation bounds over it.
- ``interval.py``: interval bound propagation, per example, rigorous in float64 (relu, tanh, sigmoid).
- ``lp.py``: the Wong-Kolter LP bound, per example (ball or box), rigorous in float64.
- ``result.py``: ``CertificationResult``.
- ``certifier.py``: ``Certifier``, which dispatches through ``METHOD_TABLE`` (method name -> how to compute it).
"""

from .._checks import check_eps
from .box import example_region, input_bounds, preactivation_bounds
from .certifier import ALL_METHODS, CASCADE, METHOD_TABLE, METHODS, CertificationMethod, Certifier, methods_for
from .interval import interval_margin_bounds, interval_worst_margins
from .growth import frobenius_growth, sdp_growth, spectral_growth
from .lp import lp_margin_bounds, lp_worst_margins
from .margins import certify_with_growth, forward_error_bound
from .pair_sdp import PAIR_BOUNDS_CACHE, PairBounds, PairBoundsCache, PairSdpCache, pair_sdp_values
from .result import CertificationResult

__all__ = ["Certifier", "PairBounds", "PairBoundsCache", "PairSdpCache", "PAIR_BOUNDS_CACHE", "CertificationResult",
           "CertificationMethod", "forward_error_bound", "certify_with_growth", "METHODS", "METHOD_TABLE",
           "methods_for", "ALL_METHODS", "CASCADE", "example_region", "input_bounds", "preactivation_bounds",
           "interval_margin_bounds", "interval_worst_margins", "check_eps", "pair_sdp_values", "sdp_growth", "spectral_growth", "frobenius_growth",
           "lp_margin_bounds", "lp_worst_margins"]
