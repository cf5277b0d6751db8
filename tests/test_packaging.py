"""The project's promises about itself: two commands, matching dependency lists, CI = make test."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
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


WHEEL_BUDGET_MB = 30  # the two kit backbones' weights are 2 x 11 MB; code and shipped results add well under 1 MB


@pytest.mark.slow
def test_the_package_builds_its_metadata_renders_and_the_wheel_holds_what_the_notebooks_read(tmp_path):
    """A pip-installed kit (Colab) has only the wheel: every file a notebook or widget reads at run time must be in it
    (the full-recipe runs 05 and the lecture demo compare against used to be read from benchmarks/), and nothing of
    the repository's own (tests, notebooks, benchmarks)."""
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,), (wheel,) = tmp_path.glob("*.tar.gz"), tmp_path.glob("*.whl")
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "adaptertune_lite"
    needed = {p.relative_to(ROOT).as_posix() for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert not needed - names, f"missing from the wheel: {sorted(needed - names)[:10]}"
    assert {n for n in names if "kit_full_recipe/runs/" in n} and {n for n in names if "lecture_elbow/runs/" in n}
    outside = {n for n in names if not n.startswith(("adaptertune_lite/", "adaptertune_lite-"))}
    assert not outside and not {n for n in names if n.endswith(".pyc")}, sorted(outside)[:10]
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert wheel.stat().st_size <= WHEEL_BUDGET_MB * 2**20, f"the wheel is {wheel.stat().st_size / 2**20:.1f} MB"


def test_the_repository_says_how_it_may_be_used_and_cited():
    assert pyproject()["project"]["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["license"] == "MIT" and cff["repository-code"] == pyproject()["project"]["urls"]["Repository"]
    assert any("adaptertune" in ref.get("repository-code", "") for ref in cff["references"])  # the method's source


def test_the_workflows_pass_actionlint_and_ci_runs_make_test(tmp_path):
    actionlint = Path(sys.executable).with_name("actionlint")
    if not actionlint.exists():  # the test extra installs it on Linux x86_64 only (the binary is in its wheel)
        pytest.skip("actionlint is installed on Linux x86_64 only")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} == {"ci.yml", "release.yml"}
    linted = subprocess.run([str(actionlint), *map(str, workflows)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert [s["run"] for s in ci["jobs"]["test"]["steps"] if s.get("name") == "make test"] == ["make test"]
    broken = tmp_path / "broken.yml"  # actionlint must catch a mistake, or the check above proves nothing
    broken.write_text((ROOT / ".github" / "workflows" / "ci.yml").read_text().replace("runs-on: ubuntu-24.04", "runs-on: ${{ matrix.os }}"))
    assert subprocess.run([str(actionlint), str(broken)], capture_output=True, text=True).returncode != 0
