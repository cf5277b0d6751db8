"""The benchmark scripts run end to end (tiny --quick configuration; the real runs write benchmarks/results/)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaptertune_lite.recipes import HEAD_ONLY_EPOCHS_FACTOR, KIT_RECIPES

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> None:
    """Run ``benchmarks/<script>`` with ``args`` from the repository root; fail with its stderr if it fails."""
    out = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow
def test_kit_backbone_benchmark_quick_run_writes_a_report(tmp_path):
    run_script("kit_backbone.py", "--quick", "--out", str(tmp_path))
    report = (tmp_path / "kit_vit_tiny.md").read_text()
    assert "QUICK SMOKE RUN" in report and "| bar | measured | target | pass |" in report
    for section in ("## Transfer to every offline target", "## Rank elbow", "## Few-shot regime", "## Live sweep",
                    "## left_digit at the course's full recipe", "left_digit (full recipe): full FT minus AdapterTune",
                    "## left_digit: the gap bar and the elbow against the training budget", "The gap bar passes at: ",
                    "Robust elbow (the smallest rank reaching 90 % of the gain", "Robust elbow at the full recipe: r = "):
        assert section in report
    # the elbow margin hangs on the largest rank: reported with its interval, never as a bar
    assert "elbow: gain(8->32) minus 3 x gain(32->64)" not in report and "| elbow margin (points) |" in report
    assert report.index("The default target's bars at the course's full recipe") < report.index("Every target at the benchmark's budget")
    for target in ("mnist5k", "digits", "left_digit", "max_digit"):
        assert f"| {target} |" in report
    assert (tmp_path / "kit_vit_tiny_elbow.png").stat().st_size > 0
    stored = json.loads((tmp_path / "kit_vit_tiny.json").read_text())["runs"]
    head_only = [r["config"] for r in stored.values() if r["config"]["method"] == "head_only" and not r["config"].get("k_shot")]
    assert head_only and all(c["epochs"] == HEAD_ONLY_EPOCHS_FACTOR * 1 for c in head_only)  # --quick: 1 epoch; head-only converges

    # --reuse rebuilds the report from the committed runs without training them again (the engine's cache is gone)
    shutil.rmtree(tmp_path / "engine_runs")
    run_script("kit_backbone.py", "--quick", "--reuse", "--out", str(tmp_path))
    rebuilt = (tmp_path / "kit_vit_tiny.md").read_text()
    assert f"Runs: 0 trained for this report, {len(stored) - sum(k.startswith('pixel') for k in stored)} reused" in rebuilt
    assert not (tmp_path / "engine_runs" / "runs").exists() or not any((tmp_path / "engine_runs" / "runs").iterdir())
    tables = lambda text: text.split("## Transfer to every offline target")[1].split("## Live sweep")[0]  # noqa: E731
    assert tables(rebuilt) == tables(report)  # the same runs, the same numbers


@pytest.mark.slow
def test_grading_benchmark_quick_run_writes_a_report(tmp_path):
    run_script("grading.py", "--students", "3", "--out", str(tmp_path))
    report = (tmp_path / "grading.md").read_text()
    assert "| submissions of `ex01_adapter` | 3 |" in report
    assert "fail 1, not_implemented 3, pass 5" in report  # complete (3 pass), stub (3 not implemented), broken (2 + 1 fail)


@pytest.mark.slow
def test_speed_benchmark_quick_run_measures_every_section(tmp_path):
    run_script("speed.py", "--quick", "--out", str(tmp_path))
    report = (tmp_path / "speed_cpu.md").read_text()
    assert "QUICK SMOKE RUN" in report
    for section in ("## 1. `fit` against a naive", "## 2. Every method", "## 3. Head-only: cached", "## 4. Adapters in the last 2",
                    "## 5. Model FLOP utilisation"):
        assert section in report
    for method in ("head_only", "adapter_tune + checkpointing", "lora + checkpointing", "full_finetune"):
        assert f"| {method} |" in report
    assert "accuracy identical" in report  # the prefix cache changes speed, not results
    results = json.loads((tmp_path / "speed_cpu.json").read_text())
    assert results["fit_vs_naive"]["ratio"] > 0 and 0 < results["mfu"]["mfu"] < 1
    lora = next(m for m in results["methods"] if m["method"] == "lora" and not m["checkpointing"])
    adapter = next(m for m in results["methods"] if m["method"] == "adapter_tune" and not m["checkpointing"])
    assert lora["trainable"] > adapter["trainable"] > 0  # LoRA on 4 linears per block trains more than one adapter per block


@pytest.mark.slow
def test_the_paper_profile_cost_estimate_counts_every_notebook_and_says_it_is_an_estimate(tmp_path):
    run_script("paper_profile_cost.py", "--backbone", "deit_tiny_patch16_224", "--out", str(tmp_path))
    report = (tmp_path / "paper_profile_cost.md").read_text()
    assert "an **estimate**" in report and "assumed 30 % utilisation" in report
    cost = json.loads((tmp_path / "paper_profile_cost.json").read_text())
    runs = {name: row["runs"] for name, row in cost["notebooks"].items()}
    assert runs == {"04_transfer_methods": 18, "05_rank_elbow": 42, "06_placement": 62, "07_paper_setting": 14}
    for row in cost["notebooks"].values():  # a T4 is slower than an A100, which is slower than an H100
        minutes = row["minutes"]
        assert minutes["Colab T4 (fp16)"] > minutes["A100 (bf16)"] > minutes["H100 SXM (bf16)"] > 0


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_on_a_cpu_in_smoke_mode(tmp_path):
    """The GPU check must not fail for the first time on the scarce GPU: its smoke mode runs all four sections here."""
    run_script("gpu_check.py", "--smoke", "--out", str(tmp_path))
    check = json.loads((tmp_path / "gpu_cpu.json").read_text())
    for section in ("speed", "graphs_per_sweep", "kit_full_recipe", "paper_profile_cost"):
        assert "error" not in check[section], check[section]
    assert check["graphs_per_sweep"]["unique_graphs"] == 1  # three fits of one shape, one compiled graph
    report = (tmp_path / "gpu_cpu.md").read_text()
    assert "FAILED" not in report and "--smoke" in report and "an estimate" in report


@pytest.mark.slow
def test_precision_check_quick_run_pairs_fp32_and_emulated_bf16(tmp_path):
    run_script("precision_check.py", "--quick", "--seeds", "2", "--out", str(tmp_path))
    report = (tmp_path / "precision_cpu_bf16.md").read_text()
    assert "QUICK SMOKE RUN" in report and "| seed | fp32 | bf16 | bf16 − fp32 (points) |" in report
    assert "Paired over seeds: bf16 − fp32" in report and "fewer than 3 seeds" in report  # 2 seeds never make a difference
    stored = json.loads((tmp_path / "precision_cpu_bf16.json").read_text())
    assert len(stored["test_acc"]["fp32"]) == len(stored["test_acc"]["bf16"]) == 2
    assert stored["val_acc"]["fp32"] != stored["val_acc"]["bf16"]  # bf16 really ran: its rounding moves the numbers


@pytest.mark.slow
def test_kit_lr_quick_run_chooses_on_validation(tmp_path):
    run_script("kit_lr.py", "--quick", "--out", str(tmp_path))
    report = (tmp_path / "kit_lr.md").read_text()
    assert "QUICK SMOKE RUN" in report and "## adapter_tune" in report and "## full_finetune" in report
    stored = json.loads((tmp_path / "kit_lr.json").read_text())
    assert set(stored["methods"]) == set(KIT_RECIPES)  # every kit rate comes from this one script
    for method, entry in stored["methods"].items():
        val = np.array(entry["fast"]["val_acc"]).mean(1)
        assert entry["fast"]["chosen"] == entry["grid"][int(val.argmax())]  # the best mean validation accuracy
        assert "test" not in json.dumps(entry)  # test accuracy never enters the choice, nor the report


@pytest.mark.slow
def test_course_time_quick_run_times_every_notebook_it_runs_and_its_cells(tmp_path):
    run_script("course_time.py", "--quick", "--out", str(tmp_path))
    report = (tmp_path / "course_time_cpu.md").read_text()
    assert "QUICK SMOKE RUN" in report and "the course's target is 8 min" in report
    timed = json.loads((tmp_path / "course_time_cpu.json").read_text())
    assert [n["notebook"] for n in timed["notebooks"]] == ["notebooks/00_start_here.ipynb", "solutions/ex01_adapter.ipynb"]
    for notebook in timed["notebooks"]:  # every code cell ran and was timed; the notebook's wall time covers them
        assert notebook["cells"] and all(c["seconds"] is not None and c["seconds"] >= 0 for c in notebook["cells"])
        assert 0 < sum(c["seconds"] for c in notebook["cells"]) <= notebook["wall_s"]
        assert notebook["shutdown_s"] > 0  # the kernel's shutdown, timed apart: not in wall_s, which ends with the last cell
    assert timed["total_s"] == sum(n["wall_s"] for n in timed["notebooks"])
    assert timed["step_ms"]["before"] > 0 and timed["step_ms"]["after"] > 0  # the machine's speed, probed around the walk
    assert f"{timed['step_ms']['before']:.0f} ms before the walk" in report


def test_every_kit_learning_rate_is_the_one_the_committed_kit_lr_report_keeps():
    """recipes.KIT_RECIPES and benchmarks/results/kit_lr.json must agree: a rate changed by hand, or a report
    that asks for an update nobody made, fails here."""
    stored = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "kit_lr.json").read_text())
    for method, recipe in KIT_RECIPES.items():
        entry = stored["methods"][method]
        assert entry["kit_lr"] == recipe.lr, f"{method}: the report was measured against another kit rate; re-run kit_lr.py"
        assert entry["decision"] in ("same", "keep"), f"{method}: the report chose {entry['fast']['chosen']:g}; update KIT_RECIPES"


def test_readme_course_times_are_the_committed_course_time_report():
    """README's per-notebook FAST times and its total come from benchmarks/results/course_time_cpu.json, not by hand."""
    root = Path(__file__).resolve().parents[1]
    timed = json.loads((root / "benchmarks" / "results" / "course_time_cpu.json").read_text())
    readme = (root / "README.md").read_text()
    assert f"**{timed['total_s']:.0f} s ({timed['total_s'] / 60:.1f} min)**" in readme
    for notebook in timed["notebooks"]:
        path = Path(notebook["notebook"])
        if path.parent.name == "notebooks":
            row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.stem}` |"))
            assert f"| {notebook['wall_s']:.0f} s |" in row, f"README's row for {path.stem} is not the report's {notebook['wall_s']:.0f} s"
    probe = timed["step_ms"]
    assert f"{probe['before']:.0f} ms before the walk and {probe['after']:.0f} ms after" in readme
    # the breakdown under the table: kernel shutdowns (not counted), imports, and the cells over 8 s
    shutdown = sum(n["shutdown_s"] for n in timed["notebooks"])
    assert f"({shutdown:.0f} s in all" in readme and f"counted, the total is {timed['total_s'] + shutdown:.0f} s" in readme
    imports = sum(max(c["seconds"] for c in n["cells"] if c["first_line"].startswith(("import", "from"))) for n in timed["notebooks"])
    slow = sum(c["seconds"] for n in timed["notebooks"] for c in n["cells"] if (c["seconds"] or 0) > 8)
    assert f"about {imports:.0f} s are importing" in readme and f"{slow:.0f} s are the cells that take over 8 s" in readme
