"""Reports: what the certificates are worth against attacks, on real networks.

- :mod:`.soundness` -- the one count of certified points that an attack fooled anyway (must be 0);
- :mod:`.error_vs_eps` -- Fig. 3b's rows (attacks vs certificates over eps), their CSV and PNG
  (``python -m sdpcert.experiments fig3b``, in ``__main__.py``);
- :mod:`.demo` -- ``sdpcert demo``: train, certify and attack a small net in about a minute;
- :mod:`.reproduce` -- ``sdpcert reproduce``: the paper's experiments end to end.
"""

from .error_vs_eps import ATTACK_OPTIONS, error_vs_eps, plot_error_vs_eps, write_csv
from .soundness import broken_points, count_broken, soundness_entry

__all__ = ["error_vs_eps", "write_csv", "plot_error_vs_eps", "ATTACK_OPTIONS", "broken_points", "count_broken",
           "soundness_entry"]
