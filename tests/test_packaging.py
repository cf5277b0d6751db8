"""The project's promises about itself: two commands, matching dependency lists, CI = make test."""

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from helpers import pyproject

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = pyproject()["project"]
    wanted = set(project["dependencies"]) | {r for extra in project["optional-dependencies"].values() for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == wanted  # same names *and* the same version ranges
    assert "-e ." in pip


def test_ranges_admit_colab_ipywidgets_and_python():
    project = pyproject()["project"]
    reqs = {_name(r): Requirement(r).specifier for r in project["dependencies"]}
    assert "7.7.1" in reqs["ipywidgets"] and "8.1.5" in reqs["ipywidgets"]
    assert "2.14.1" in reqs["torch"] and "1.0.15" in reqs["timm"]
    assert all(v in SpecifierSet(project["requires-python"]) for v in ("3.11", "3.12", "3.13"))


def test_readme_gives_the_two_commands_first_and_ci_runs_make_test():
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:40])
    assert "make lab" in first_screen and "make test" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == "make test"  # the newcomer's command, run last
    # before it, only set-up that README also names (Debian's chromium for the browser test); nothing else tests
    assert not any("pytest" in c or c.startswith("make") for c in commands[:-1])
    assert "apt install chromium" in readme


def test_make_registers_no_kernel_per_user():
    """A per-user kernel outlives the checkout that registered it (the last `make` wins, and two kernels show
    in the Launcher). JupyterLab from .venv runs the notebooks on its own python3 kernel instead."""
    makefile = (ROOT / "Makefile").read_text()
    assert "kernelspec install" not in makefile and "ipykernel install" not in makefile


def _lock() -> dict[str, str]:
    """constraints.txt as {name: exact version}."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_name(line): line.split("==", 1)[1] for line in lines if line and not line.startswith("#")}


def test_the_lock_pins_every_dependency_inside_pyprojects_ranges():
    """make lab / make test install from constraints.txt, so a fresh machine gets the versions CI ran; each pin
    must be one the pyproject range admits (users outside make get the ranges)."""
    project = pyproject()["project"]
    lock = _lock()
    reqs = [Requirement(r) for r in project["dependencies"] + [r for extra in ("lab", "test")
                                                               for r in project["optional-dependencies"][extra]]]
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue  # e.g. tomli on Python < 3.11
        assert _name(req.name) in lock, f"{req.name} is not pinned: run `make lock`"
        assert lock[_name(req.name)] in req.specifier, f"{req.name}=={lock[_name(req.name)]} is outside {req.specifier}"
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "$(STAMP): pyproject.toml constraints.txt" in makefile


def test_make_test_lints_before_it_tests():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("ruff check") < recipe.index("pytest")
