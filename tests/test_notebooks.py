"""Every notebook runs top to bottom in FAST mode, and shows the outputs its text promises.

The notebooks assert their own claims (an identity is exact, a gradient is zero), so a claim that
stops being true fails here. This test also checks the committed .ipynb twins are in sync."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import adaptertune_lite as at
from adaptertune_lite.grading import tasks_of
from helpers import pyproject

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))  # exercises filled in: every self-check must pass

# Text that must appear in a notebook's outputs (beyond running without error).
EXPECTED = {
    "00_start_here": ["device:", "All set.", "held-out accuracy", "active profile: kit (kit_vit_tiny on left_digit)"],
    "01_build_an_adapter": ["✓ our hand-made forward pass computes exactly the model's logits",
                            "torch.Size([8, 17, 192])", "my adapter == at.Adapter: True", "304,320",
                            "block(x) == hand-written block: True", "**0.92 %** with the head"],
    "02_zero_init_identity": ["✓ at step 0 every W_down gradient is exactly zero", "✓ small init is near-identity",
                              "✓ the deviation grows in proportion to σ",
                              "bitwise identical: 5 of 5 placements", "down-projection gradient is exactly zero",
                              "median |ΔW_up| / lr = 1.0000", "still exactly zero", "for every init: **True**"],
    "03_drift_random_init": ["✓ random init lowers it before any learning", "✓ at step 0 random init's features have already moved",
                             "pretraining-head accuracy at step 0", "linear CKA", "relative change of pooled features",
                             "paired by seed", "CLS"],
    "04_transfer_methods": ["95 % CI", "raw-pixel logistic regression", "pretraining buys (points)", "kit profile",
                            "head-only on left_digit: validation",
                            "Memory per training step", "activations"],
    "05_rank_elbow": ["% of full fine-tuning", "of the gain from the smallest to the largest rank is reached ",
                      "full recipe: ", "points from r = 1 to r = 64, noise ±", "with the largest rank left out",
                      "smaller set's elbow"],
    "06_placement": ["− post_block on all:", "faster** with", "blocks.5.attn.adapter"],
    "07_paper_setting": ["kit profile", "running the kit-scale equivalent", "estimated minutes", "each method keeps its learning rate",
                         "head-only: validation accuracy",
                         "AdapterTune r=16 − head-only:", "about 0.92 % at r = 16"],
    "08_lora_and_merging": ["step 0, LoRA model == backbone, bitwise: True", "LoRA layers left after merging: 0",
                            "same state_dict keys as the original backbone: True", "unexplained", "each method's rate (KIT_RECIPES)", "95 % CI",
                            "the convention whose first step changes least with the rank: under Adam alpha/r, under SGD alpha/sqrt(r)",
                            "served", "bitwise the original: True", "90 % of ΔW's energy"],
    "lecture_elbow_demo": ["adaptertune-lite sweep", "21 runs on", "of the gain from the smallest to the largest rank is reached ",
                           "Budget: ", "**full recipe** (15 epochs, all images)"],
}
# Text that must never appear: a claim the notebook checks and prints, found false. Every notebook states its claims
# with at.course.claims.claim, which prints FAILS instead of raising, so a student's changed seed never stops a notebook.
NEVER = {"08_lora_and_merging": ["DIFFERENT", "bitwise the original: False", "bitwise: False"]}


def test_ipynb_twins_are_in_sync_with_their_sources():
    out = subprocess.run([sys.executable, "tools/sync_notebooks.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for py in (ROOT / "notebooks").glob("*.py"):
        assert py.with_suffix(".ipynb").is_file()


def test_a_student_who_runs_and_saves_a_notebook_breaks_neither_its_source_nor_the_sync_check(tmp_path):
    """JupyterLab saves outputs into the .ipynb and jupytext rewrites the paired .py (here: `jupytext --sync`,
    which reads the same jupytext.toml). The .py must come back byte-for-byte, and the twin check must pass."""
    sys.path.insert(0, str(ROOT / "tools"))
    import sync_notebooks  # noqa: PLC0415  (tools/ is on the path only from here)

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "jupytext.toml").write_text((ROOT / "jupytext.toml").read_text())
    for py in sorted((ROOT / "notebooks").glob("*.py")):
        src, twin = tmp_path / "notebooks" / py.name, tmp_path / "notebooks" / f"{py.stem}.ipynb"
        src.write_text(py.read_text())
        nb = nbformat.reads(sync_notebooks.render(py), as_version=4)
        for i, cell in enumerate(nb.cells):  # what a run leaves behind
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", text="ran\n")], i
                cell.metadata["execution"] = {"iopub.status.idle": "2026-11-23T10:00:00"}
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        nbformat.write(nb, twin)
        os.utime(twin, (src.stat().st_mtime + 10,) * 2)  # the .ipynb is the newer file, as after a save
        out = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(twin)], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert src.read_text() == py.read_text(), f"saving {twin.name} rewrote {py.name}"
        assert sync_notebooks.cells(twin.read_text()) == sync_notebooks.cells(sync_notebooks.render(py))


def _outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.extend(str(v) for k, v in out.get("data", {}).items() if k in ("text/plain", "text/markdown", "text/html"))
    return "\n".join(text)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS + SOLUTIONS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch, course_runs):
    monkeypatch.setenv("ADAPTERTUNE_FAST", "1")
    monkeypatch.setenv("ADAPTERTUNE_PROFILE", "kit")  # the offline student's course (test_online_path runs the paper profile)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("ADAPTERTUNE_RUNS", str(course_runs))  # one cache for the course, as a student's: 08 loads 04's runs
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()  # per cell
    shown = _outputs(nb)
    if path.parent.name == "solutions":
        EXPECTED[path.stem] = [f"PASS  {t.id}  {t.points:g}/{t.points:g} points" for t in tasks_of(path.stem.split("_")[0])]
    for text in EXPECTED.get(path.stem, []):
        assert text in shown, f"{path.name} did not show {text!r}"
    nbformat.write(nb, tmp_path / path.name)  # executed copy, for a human to look at when something fails
    for text in NEVER.get(path.stem, []) + [at.course.claims.FAILS]:
        assert text not in shown, f"{path.name} showed {text!r}"
    stderr = [out["text"] for cell in nb.cells for out in cell.get("outputs", []) if out.get("name") == "stderr"]
    assert not stderr, f"{path.name} printed to stderr (a student reads red text as an error): {stderr}"


def test_every_notebook_installs_and_opens_from_the_one_repository_url():
    repo = pyproject()["project"]["urls"]["Repository"]
    path = repo.removeprefix("https://github.com/")
    for py in sorted(p for folder in ("notebooks", "exercises", "solutions") for p in (ROOT / folder).glob("*.py")):
        text = py.read_text()
        assert f'SOURCE = "git+{repo}"' in text and 'KIT = "adaptertune-lite"' in text, f"{py.name}: not pyproject's install cell"
        assert f"colab.research.google.com/github/{path}/blob/main/{py.parent.name}/{py.stem}.ipynb" in text, py
        assert set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", text)) == {path}, f"{py.name} names another repository"


def test_the_badge_and_install_cell_are_written_from_pyproject_so_one_line_moves_them_all(monkeypatch):
    """A maintainer sets [project.urls] Repository once; `python tools/sync_notebooks.py` rewrites every badge and
    install cell, and its --check (run by the twins test above) fails while any still names the old repository."""
    sys.path.insert(0, str(ROOT / "tools"))
    import sync_notebooks  # noqa: PLC0415  (tools/ is on the path only from here)

    sources = [p for folder in sync_notebooks.AUTHORED for p in sorted((ROOT / folder).glob("*.py"))]
    assert sources and all(sync_notebooks.with_install_cell(p.read_text()) == p.read_text() for p in sources)
    monkeypatch.setattr(sync_notebooks, "project", lambda: ("adaptertune-lite", "https://github.com/real-org/adaptertune_lite"))
    for src in sources:
        moved = sync_notebooks.with_install_cell(src.read_text())
        assert "github.com/adaptertune-lite/" not in moved and moved.count("real-org/adaptertune_lite") == 2, src.name
    code = "import importlib.util\nprint(1)\n"
    with pytest.raises(ValueError, match="no install cell"):
        sync_notebooks.with_install_cell(code)


@pytest.mark.slow
def test_colab_simulated_the_wheel_in_a_fresh_python_runs_the_notebooks_from_their_ipynb_alone(tmp_path, monkeypatch, course_runs):
    """Colab as a student meets it: a Python with torch and the rest preinstalled but no kit, and only the .ipynb
    files. The wheel is built as a release builds it; a fresh venv sees this environment's packages (Colab's
    preinstalled ones) but not the kit. 00's install cell installs the wheel (ADAPTERTUNE_INSTALL points it there
    instead of PyPI) and keeps the preinstalled torch; 05 and the lecture demo then run with the kit present and must
    show the full-recipe comparison, which a pip install used to lose without a word."""
    wheels = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(wheels), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")
    colab = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(colab)], check=True)
    python = colab / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "preinstalled.pth").write_text(ours + "\n")  # a plain path entry: the editable kit's finder is not loaded
    assert subprocess.run([str(python), "-c", "import adaptertune_lite"], cwd=tmp_path, capture_output=True).returncode != 0
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                     "display_name": "colab", "language": "python"}))
    work = tmp_path / "work"  # only the .ipynb files, as Colab opens them
    work.mkdir()
    for nb in NOTEBOOKS:
        shutil.copy(nb, work / nb.name)
    for name, value in {"JUPYTER_PATH": str(tmp_path / "jupyter"), "ADAPTERTUNE_INSTALL": str(wheel), "ADAPTERTUNE_FAST": "1",
                        "ADAPTERTUNE_PROFILE": "kit", "MPLBACKEND": "Agg", "ADAPTERTUNE_RUNS": str(course_runs)}.items():
        monkeypatch.setenv(name, value)
    shown = {}
    for stem in ("00_start_here", "05_rank_elbow", "lecture_elbow_demo"):
        nb = nbformat.read(work / f"{stem}.ipynb", as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="colab", resources={"metadata": {"path": str(work)}}).execute()
        shown[stem] = _outputs(nb)
        for text in EXPECTED[stem]:
            assert text in shown[stem], f"{stem} (installed from the wheel) did not show {text!r}"
    assert f"installing {wheel}, keeping the preinstalled torch==" in shown["00_start_here"]  # the branch that installs
    assert f"from {site}/adaptertune_lite/__init__.py" in shown["05_rank_elbow"]  # the kit present: the wheel's copy
    assert "No full-recipe sweep ships" not in shown["05_rank_elbow"] + shown["lecture_elbow_demo"]
    assert "**full recipe**" in shown["lecture_elbow_demo"]
