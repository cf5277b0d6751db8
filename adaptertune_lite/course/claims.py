"""Claims a notebook states and checks on its own numbers: printed, never asserted.

A notebook that ``assert``-ed its claims would stop with an ``AssertionError`` when a student changes a seed or
``σ`` and a claim stops holding, which is exactly the experiment worth making. ``claim`` prints which claims hold on
this run's numbers and lets the next cells run; the tests read the executed notebooks and fail on any ``✗``.
"""

from __future__ import annotations

FAILS = "✗ NOT TRUE HERE:"  # what a failed claim prints (tests/test_notebooks.py looks for it)


def claim(holds, statement: str) -> bool:
    """Print ``✓ statement`` when ``holds`` is true, else ``✗ NOT TRUE HERE: statement``; return it as a bool.

    >>> claim(1 + 1 == 2, "one plus one is two")
    ✓ one plus one is two
    True
    """
    holds = bool(holds)
    print(("✓ " if holds else f"{FAILS} ") + statement)
    return holds
