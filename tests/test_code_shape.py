"""The package stays readable in one sitting: a one-screen fit, short functions, every module named."""

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import adaptertune_lite as at
from adaptertune_lite import data

PACKAGE = Path(at.__file__).parent


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _depth(node: ast.AST, level: int = 0) -> int:
    """How deep compound statements (for, while, if, with, try) nest inside ``node``."""
    nested = (ast.For, ast.While, ast.If, ast.With, ast.Try)
    deepest = level
    for child in ast.iter_child_nodes(node):
        deepest = max(deepest, _depth(child, level + isinstance(child, nested)))
    return deepest


def test_fit_reads_in_one_screen():
    tree = ast.parse(inspect.getsource(at.train)).body
    fit = next(n for n in tree if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 60
    args = fit.args
    assert len(args.args) + len(args.kwonlyargs) <= 12 and args.vararg is None and args.kwarg is None
    assert _depth(fit) <= 3  # e.g. with -> for epoch -> for batch


def test_no_function_in_the_package_is_over_80_lines():
    long = [f"{path.relative_to(PACKAGE)}:{f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for path in PACKAGE.rglob("*.py") for f in _functions(ast.parse(path.read_text()))
            if f.end_lineno - f.lineno + 1 > 80]
    assert not long


CORE = sorted(p for p in PACKAGE.glob("*.py"))  # the core: what a student reads (the machinery is in sub-packages)
LAYERS = ("engine", "course")


def test_every_module_is_named_in_the_package_docstring_and_the_readme_in_its_layer():
    core = {p.stem for p in CORE if p.stem != "__init__"}
    machinery = {f"{layer}/{p.stem}" for layer in LAYERS for p in (PACKAGE / layer).glob("*.py") if p.stem != "__init__"}
    doc, readme = at.__doc__, (PACKAGE.parent / "README.md").read_text()
    assert not {m for m in core if f"``{m}``" not in doc}
    assert not {m for m in machinery if f"``{m.split('/')[1]}``" not in doc}
    assert not {m for m in core | machinery | {"grading"} if not re.search(rf"`{m}(\.py|/)?`", readme)}


def test_the_core_a_student_reads_stays_small():
    """The promise is one sitting: the core (adapters first, no machinery) within 2,500 lines."""
    lines = sum(len(p.read_text().splitlines()) for p in CORE)
    assert lines <= 2500, f"the core has grown to {lines} lines: move machinery to engine/ or course/"


def test_the_layer_contract_fails_when_a_core_module_imports_the_course(tmp_path):
    """`make test` runs lint-imports; here the contract is run on a copy of the package in which the core's train
    module imports the course layer, and must fail (the real package must pass)."""
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(PACKAGE.parent / "pyproject.toml")]
    assert subprocess.run(lint, cwd=PACKAGE.parent, capture_output=True, text=True).returncode == 0
    copy = tmp_path / "adaptertune_lite"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("weights", "results", "__pycache__"))
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\nfrom .course import plots  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    broken = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert broken.returncode != 0 and "adaptertune_lite.train -> adaptertune_lite.course" in broken.stdout


def test_the_batch_transform_lives_on_the_device_of_the_batches():
    """A transform whose mean/std stay on the CPU copies them to the GPU on every batch (a host sync per step):
    fit and evaluate take the transform moved to their device once. Checked on the meta device, which any
    CPU machine has."""
    split = at.load_dataset("digits", at.load_backbone("kit_vit_tiny", num_classes=10), n_train=10).train
    moved = data.transform_of(split, torch.device("meta"))
    assert {b.device.type for b in moved.buffers()} == {"meta"}
