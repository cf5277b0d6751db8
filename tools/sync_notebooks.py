"""Generate the committed .ipynb twins from the jupytext percent .py sources, deterministically.

    python tools/sync_notebooks.py           # write every notebooks/*.ipynb from its .py
    python tools/sync_notebooks.py --check   # exit 1 if any .ipynb is missing or out of date (CI)

Twins carry no outputs and stable cell ids (``cell-000``, ``cell-001``, ...), so regenerating an
unchanged source gives the same bytes and a diff shows only real changes.

A student who runs a notebook in JupyterLab and saves it must not break this check: the check
compares cells (type and source), not outputs, execution counts or metadata, and the .py sources
are kept in the exact form jupytext writes them (``jupytext.toml`` pins its settings), so a save
that rewrites the paired .py leaves it byte-for-byte unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "exercises", "solutions")


def render(source: Path) -> str:
    """The .ipynb text for a jupytext percent source: no outputs, stable ids, python3 kernel (Colab's)."""
    nb = jupytext.read(source, fmt="py:percent")
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


def canonical_source(source: Path) -> str:
    """``source`` as jupytext writes it back with the settings of ``jupytext.toml`` (no metadata header)."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = {"jupytext": {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"}}
    for cell in nb.cells:  # as from a saved .ipynb, whose cells carry no jupytext layout hints
        cell.metadata = {}
    return jupytext.writes(nb, fmt="py:percent")


def cells(ipynb_text: str) -> list[tuple[str, str]]:
    """What a twin is compared on: each cell's type and source (outputs and metadata are a run's, not the course's)."""
    return [(c.cell_type, c.source) for c in nbformat.reads(ipynb_text, as_version=4).cells]


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a twin is stale")
    args = parser.parse_args(argv)
    stale = []
    for src in sources():
        canonical = canonical_source(src)
        if src.read_text() != canonical:
            if args.check:
                stale.append(str(src.relative_to(ROOT)) + " (not in jupytext's form)")
            else:
                src.write_text(canonical)
                print(f"rewrote {src.relative_to(ROOT)} in jupytext's form")
        twin, text = src.with_suffix(".ipynb"), render(src)
        if twin.is_file() and (twin.read_text() == text or (args.check and cells(twin.read_text()) == cells(text))):
            continue
        if args.check:
            stale.append(str(twin.relative_to(ROOT)))
        else:
            twin.write_text(text)
            print(f"wrote {twin.relative_to(ROOT)}")
    if stale:
        print("Out of date (run `python tools/sync_notebooks.py`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
