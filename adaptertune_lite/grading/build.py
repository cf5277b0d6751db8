"""One source per exercise: a master with solution markers becomes a stub and a solution notebook.

In a master (``exercises/src/exNN_name.py``, jupytext percent), each answer sits inside a function
or method body between two marker lines::

    def adapter_param_count(d: int, r: int) -> int:
        ### BEGIN SOLUTION
        return 2 * d * r + r + d
        ### END SOLUTION

``exercises/exNN_name.{py,ipynb}`` get ``# YOUR CODE HERE`` and ``raise NotImplementedError`` in
its place (so an unfinished task fails with NotImplementedError and nothing else);
``solutions/exNN_name.{py,ipynb}`` keep the answer without the markers. Both are written through
the same renderer as the course notebooks (:mod:`adaptertune_lite.course.twins`), so they are deterministic.
"""

from __future__ import annotations

import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
_CELL = re.compile(r"^# %%(.*)$")


class MarkerError(ValueError):
    """A master whose solution markers cannot be split (unclosed, nested, outside a code body)."""


def split(master: str, name: str = "master") -> tuple[str, str]:
    """``(exercise, solution)`` percent sources from a master's text. Raises MarkerError with the line."""
    exercise, solution = [], []
    in_markdown, block_indent, begin_line = False, None, 0
    for n, line in enumerate(master.splitlines(), 1):
        cell = _CELL.match(line)
        if cell:
            if block_indent is not None:
                raise MarkerError(f"{name}:{begin_line}: {BEGIN} is not closed before the next cell (line {n}).")
            in_markdown = "[markdown]" in cell.group(1)
        stripped = line.strip()
        is_begin, is_end = stripped.endswith(BEGIN), stripped.endswith(END)
        if (is_begin or is_end) and (in_markdown or stripped not in (BEGIN, END)):
            raise MarkerError(f"{name}:{n}: solution markers belong on their own line in a code cell, not in {line.strip()!r}.")
        if is_begin:
            if block_indent is not None:
                raise MarkerError(f"{name}:{n}: {BEGIN} inside another solution block (opened on line {begin_line}).")
            block_indent = line[: len(line) - len(line.lstrip())]
            if not block_indent:
                raise MarkerError(f"{name}:{n}: a solution block must sit inside a function or method body (indented), "
                                  "so the stub's `raise NotImplementedError` only runs when the student's code is called.")
            begin_line = n
            exercise += [block_indent + s for s in STUB]
        elif is_end:
            if block_indent is None:
                raise MarkerError(f"{name}:{n}: {END} without a {BEGIN} before it.")
            block_indent = None
        else:
            solution.append(line)
            if block_indent is None:
                exercise.append(line)
    if block_indent is not None:
        raise MarkerError(f"{name}:{begin_line}: {BEGIN} is never closed.")
    if not begin_line:
        raise MarkerError(f"{name}: no {BEGIN} ... {END} block: an exercise needs at least one answer to write.")
    return "\n".join(exercise) + "\n", "\n".join(solution) + "\n"


def solution_blocks(master: str) -> list[str]:
    """The answer text of each solution block (to prove none of it reaches ``exercises/``)."""
    return [m.group(1) for m in re.finditer(rf"{re.escape(BEGIN)}\n(.*?)\n[ \t]*{re.escape(END)}", master, re.S)]


def masters(root: Path) -> list[Path]:
    return sorted((Path(root) / "exercises" / "src").glob("ex*.py"))


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file and its text: ``exercises/`` and ``solutions/``, ``.py`` and ``.ipynb``."""
    from ..course.twins import canonical_source, render  # noqa: PLC0415  (twins needs jupytext: the lab extra)

    root = Path(root)
    files: dict[Path, str] = {}
    for master in masters(root):
        exercise, solution = split(master.read_text(), str(master.relative_to(root)))
        solution = solution.replace("/blob/main/exercises/", "/blob/main/solutions/")  # its Colab badge opens itself
        for folder, text in (("exercises", exercise), ("solutions", solution)):
            source = canonical_source(text)
            files[root / folder / master.name] = source
            files[root / folder / master.with_suffix(".ipynb").name] = render(source)
    return files


def build(root: Path, check: bool = False) -> list[Path]:
    """Write the generated files (or, with ``check``, only list those that are missing or stale).

    The check compares an ``.ipynb`` on its cells, as ``tools/sync_notebooks.py --check`` does, so
    outputs saved by a run do not count as stale."""
    from ..course.twins import cells  # noqa: PLC0415  (twins needs jupytext: the lab extra)

    files = outputs(root)
    same = lambda p, text: p.read_text() == text or (check and p.suffix == ".ipynb" and cells(p.read_text()) == cells(text))  # noqa: E731
    stale = [p for p, text in files.items() if not p.is_file() or not same(p, text)]
    if not check:
        for p in stale:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(files[p])
    return stale
