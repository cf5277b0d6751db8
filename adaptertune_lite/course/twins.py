"""Notebook twins: a jupytext percent ``.py`` source and the ``.ipynb`` generated from it.

One renderer serves the course notebooks (``tools/sync_notebooks.py``) and the exercise / solution
split (``adaptertune-lite build-exercises``). A twin carries no outputs and stable cell ids
(``cell-000``, ``cell-001``, ...), so regenerating an unchanged source gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat


def _notebook(text: str):
    return jupytext.reads(text, fmt="py:percent")


def render(source: Path | str) -> str:
    """The .ipynb text for a percent source (a path, or the source text itself): no outputs,
    stable ids, the python3 kernel (Colab's)."""
    nb = _notebook(Path(source).read_text() if isinstance(source, Path) else source)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "jupytext": {"formats": "ipynb,py:percent"},
    }
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def canonical_source(source: Path | str) -> str:
    """The percent source as jupytext writes it back with the settings of ``jupytext.toml``
    (no metadata header), so a notebook saved from JupyterLab leaves it byte-for-byte unchanged."""
    nb = _notebook(Path(source).read_text() if isinstance(source, Path) else source)
    nb.metadata = {"jupytext": {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"}}
    for cell in nb.cells:  # as from a saved .ipynb, whose cells carry no jupytext layout hints
        cell.metadata = {}
    return jupytext.writes(nb, fmt="py:percent")


def cells(ipynb_text: str) -> list[tuple[str, str]]:
    """What a twin is compared on: each cell's type and source (outputs and metadata are a run's)."""
    return [(c.cell_type, c.source) for c in nbformat.reads(ipynb_text, as_version=4).cells]
