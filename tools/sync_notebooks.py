"""Generate the committed .ipynb twins from the jupytext percent .py sources, deterministically; and write every
source's Colab badge and install cell from pyproject.toml (the package's name and its Repository URL), so the
repository and the package are named in one place.

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
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the tomli package (in the test extra)
    import tomli as tomllib

from adaptertune_lite.course.twins import canonical_source, cells, render  # one renderer, shared with build-exercises

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "exercises", "solutions")
AUTHORED = ("notebooks", "exercises/src")  # what people edit: their badge and install cell are written here

INSTALL_CELL = """# %%
# Colab or a bare Python: install the kit. Written by tools/sync_notebooks.py from pyproject.toml: edit it there.
import importlib.metadata
import importlib.util
import os
import subprocess
import sys

KIT = "{name}"  # the published package
SOURCE = "git+{repo}"  # its repository: the fallback
if importlib.util.find_spec("adaptertune_lite") is None:
    target = os.environ.get("ADAPTERTUNE_INSTALL", KIT)  # e.g. a local wheel
    keep = [f"{{p}}=={{importlib.metadata.version(p)}}" for p in ("torch", "torchvision") if importlib.util.find_spec(p)]
    print(f"installing {{target}}, keeping the preinstalled {{', '.join(keep) or 'nothing'}} ...")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", target, *keep]).returncode != 0:
        print(f"{{target}} did not install: installing from the repository, {{SOURCE}}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SOURCE, *keep], check=True)
    importlib.invalidate_caches()
kit = importlib.util.find_spec("adaptertune_lite")
print("adaptertune_lite", importlib.metadata.version("adaptertune_lite"), "from", kit.origin)
"""
CELL = re.compile(r"^# %%\n(?:(?!# %%).*\n)*?(?:if importlib\.util\.find_spec\(\"adaptertune_lite\"\) is None:.*\n)(?:(?!# %%).*\n)*", re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/")


def project() -> tuple[str, str]:
    """(the package's name on PyPI, the repository's URL) from pyproject.toml: the one place they are set."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta["name"].replace("_", "-"), meta["urls"]["Repository"]


def with_install_cell(text: str) -> str:
    """``text`` (a percent .py source) with its Colab badge and its install cell written from pyproject.toml."""
    name, repo = project()
    text = BADGE.sub(f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/main/", text)
    cell = INSTALL_CELL.format(name=name, repo=repo)
    found = CELL.search(text)
    if found is None:
        raise ValueError("no install cell (a cell with `if importlib.util.find_spec(\"adaptertune_lite\") is None:`)")
    return text[: found.start()] + cell + ("\n" if not text[found.end():].startswith("\n") else "") + text[found.end():]


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a twin is stale")
    args = parser.parse_args(argv)
    stale = []
    for folder in AUTHORED:  # the badge and install cell come first: the twins are rendered from these sources
        for src in sorted((ROOT / folder).glob("*.py")):
            text = with_install_cell(src.read_text())
            if src.read_text() != text:
                if args.check:
                    stale.append(f"{src.relative_to(ROOT)} (its badge or install cell is not pyproject's)")
                else:
                    src.write_text(text)
                    print(f"wrote the badge and install cell of {src.relative_to(ROOT)}")
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
