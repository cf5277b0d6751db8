"""Generate the committed .ipynb twins from the jupytext percent .py sources, deterministically.

    python tools/sync_notebooks.py           # write every notebooks/*.ipynb from its .py
    python tools/sync_notebooks.py --check   # exit 1 if any .ipynb is missing or out of date (CI)

Twins carry no outputs and stable cell ids (``cell-000``, ``cell-001``, ...), so regenerating an
unchanged source gives the same bytes and a diff shows only real changes.
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


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a twin is stale")
    args = parser.parse_args(argv)
    stale = []
    for src in sources():
        twin, text = src.with_suffix(".ipynb"), render(src)
        if twin.is_file() and twin.read_text() == text:
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
