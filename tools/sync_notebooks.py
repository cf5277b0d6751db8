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

from adaptertune_lite.course.twins import canonical_source, cells, render  # one renderer, shared with build-exercises

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "exercises", "solutions")


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
