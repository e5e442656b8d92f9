"""Every ```python block of README.md runs as written (in a fresh namespace, in a temporary folder).

The only addition is PREAMBLE, for names a block uses without defining them because the reader brings them
(``torch_model``: the reader's own trained network); it is the same small random net for every block. Blocks that
set torch's thread count get it restored after.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

#: Names the README's blocks take from the reader, and nothing else.
PREAMBLE = """
import torch
torch.manual_seed(0)
torch_model = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
"""


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(1)))
    return blocks


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("line, code", python_blocks(), ids=[f"README.md:{line}" for line, _ in python_blocks()])
def test_readme_block_runs_as_written(line, code, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    namespace: dict = {"__name__": "__readme__"}
    try:
        exec(compile(PREAMBLE, "<preamble>", "exec"), namespace)
        exec(compile(code, f"{README}:{line}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
