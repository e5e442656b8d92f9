"""Reproduce the paper's experiments (§6) end to end: ``sdpcert reproduce --out DIR [--quick]``.

plan.py (what runs) -> training.py (train or reuse, by content hash) -> evaluate.py (bounds and attacks per
network) -> figures.py (PNG + CSV) -> report.py (REPORT.md, table1.md); pipeline.py runs them in order.
"""

from .pipeline import reproduce

__all__ = ["reproduce"]
