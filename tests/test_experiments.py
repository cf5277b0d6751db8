"""The experiments engine: config keys, a result cache that a killed sweep resumes from, the elbow fit."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import adaptertune_lite as at
from adaptertune_lite.course import experiments
from adaptertune_lite.course.cli import main
from adaptertune_lite.recipes import BUDGETS, KIT_RECIPES, recipe_for
from helpers import ROOT

# Tiny runs: 40 digits, one epoch on the (small) kit backbone; about a second each on a CPU.
TINY = at.RunConfig(dataset="digits", n_train=40, rank=2).replace(epochs=1, batch_size=20)


@pytest.fixture
def counted(monkeypatch):
    """Record every config `sweep` actually trains (cache hits never reach `run`)."""
    calls = []
    real = experiments.run

    def spy(config, *args, **kwargs):
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(experiments, "run", spy)
    return calls


def test_a_config_key_names_exactly_what_the_run_depends_on(monkeypatch):
    assert TINY.key() == replace(TINY).key() and len(TINY.key()) == 16
    assert TINY.key() != replace(TINY, rank=4).key() != replace(TINY, seed=1).key()
    head = replace(TINY, method="head_only")
    assert head.key() == replace(head, rank=64, placement="houlsby").key()  # adapters do not matter without adapters
    assert replace(TINY, blocks=[4, 5]) == replace(TINY, blocks=(4, 5))  # lists become tuples: still hashable
    before = TINY.key()
    monkeypatch.setattr(at, "__version__", "9.9.9")
    assert replace(TINY).key() != before  # a new kit version never reuses old results (keys are made when a config is built)


def test_from_recipe_takes_the_kit_recipe_then_the_changes():
    c = at.RunConfig.from_recipe("full_finetune", "mnist5k", fast=True, seed=3)
    fast = BUDGETS["mnist5k"]["fast"]
    assert (c.recipe.lr, c.recipe.epochs, c.n_train, c.seed) == (KIT_RECIPES["full_finetune"].lr, fast["epochs"], fast["n_train"], 3)
    assert c.recipe.epochs != BUDGETS["mnist5k"]["full"]["epochs"]  # the FAST budget, not the full one
    assert at.RunConfig.from_recipe("head_only", "mnist5k", fast=True, lr=0.5).recipe.lr == 0.5  # recipe fields change
    with pytest.raises(ValueError, match="Unknown RunConfig fields"):
        at.grid(TINY, colour=["red"])


def test_a_config_without_a_recipe_takes_its_methods_recipe_not_literals():
    """The defaults come from recipes.py: a head-only config gets the head-only learning rate."""
    assert at.RunConfig(method="head_only", dataset="mnist5k").recipe == recipe_for("head_only", "mnist5k", fast=True)
    assert at.RunConfig(method="full_finetune").recipe.lr == KIT_RECIPES["full_finetune"].lr
    assert at.RunConfig(method="full_finetune", fast=False).recipe.epochs == BUDGETS["left_digit"]["full"]["epochs"]


def test_a_recipe_that_was_not_set_follows_the_method_in_grid_replace_and_dataclasses_replace():
    """grid(adapter_tune_config, method=[...]) used to train full fine-tuning at AdapterTune's lr 1e-2 and head-only
    for 3 epochs instead of its 120."""
    base = at.RunConfig.from_recipe("adapter_tune", fast=True)
    head, full = at.grid(base, method=["head_only", "full_finetune"])
    assert head.recipe == at.RunConfig.from_recipe("head_only", fast=True).recipe and head.recipe.epochs == 120
    assert full.recipe.lr == KIT_RECIPES["full_finetune"].lr != base.recipe.lr
    assert replace(base, method="head_only").recipe == head.recipe  # dataclasses.replace too (the explorers use it)
    assert head.key() == at.RunConfig.from_recipe("head_only", fast=True).key()


def test_a_recipe_that_was_set_is_kept_across_methods_and_the_user_is_told():
    tuned = at.RunConfig.from_recipe("adapter_tune", fast=True, lr=5e-3)
    with pytest.warns(UserWarning, match="keeps the recipe that was set"):
        moved = tuned.replace(method="full_finetune")
    assert moved.recipe.lr == 5e-3
    assert tuned.replace(method="full_finetune", recipe=None).recipe.lr == KIT_RECIPES["full_finetune"].lr


def test_building_a_config_reads_neither_the_environment_nor_the_hardware(monkeypatch):
    """RunConfig() used to read FAST mode and CUDA when built: one object, different runs in different processes."""
    built = []
    for fast, cuda in (("1", False), ("0", True)):
        monkeypatch.setenv("ADAPTERTUNE_FAST", fast)
        monkeypatch.setattr("torch.cuda.is_available", lambda cuda=cuda: cuda)
        built.append((at.RunConfig(), at.RunConfig(method="head_only"), at.RunConfig.from_recipe("lora", fast=False)))
    assert built[0] == built[1] and [c.key() for c in built[0]] == [c.key() for c in built[1]]


def test_a_configs_key_is_computed_once_when_it_is_built(monkeypatch, tmp_path):
    configs = at.grid(TINY, seed=[0, 1])
    for c in configs:  # a sweep over finished runs asks every key several times
        experiments.write_json(experiments.result_path(tmp_path, c), {"format": experiments.RESULT_FORMAT, "key": c.key(),
                               "config": c.to_dict(), "val_acc": 0.5, "test_acc": 0.5, "wall_time_s": 1.0})

    def no_rehash(config):
        raise AssertionError("a key was hashed again")

    monkeypatch.setattr(experiments, "_key_of", no_rehash)
    assert [r["key"] for r in at.sweep(configs, tmp_path, progress=False)] == [c.key() for c in configs]


def test_the_recipe_is_part_of_the_key_and_speedups_are_not(tmp_path):
    assert TINY.replace(label_smoothing=0.1).key() != TINY.key() != TINY.replace(augment="crop").key()
    assert TINY.replace(lr=2 * TINY.recipe.lr).key() != TINY.key() and TINY.replace(grad_clip=None).key() != TINY.key()
    fast = at.sweep([TINY], tmp_path, progress=False, speedups=at.Speedups(compile="aot_eager"))[0]
    assert fast["key"] == TINY.key() and experiments.load_result(experiments.result_path(tmp_path, TINY), TINY)


def test_the_shipped_results_keep_their_keys():
    """Results written before Recipe existed (flat lr / epochs / ... fields) read back as the same config:
    recipe fields added later enter a key only when they differ from what those runs used."""
    shipped = experiments.load_results(experiments.SHIPPED / "lecture_elbow")
    assert shipped
    for r in shipped:
        config = at.RunConfig.from_dict(r["config"])
        assert config.key() == r["key"] and config.to_dict() == r["config"]
        assert config.recipe.lr == r["config"]["lr"] and config.recipe.grad_clip == 1.0


def test_a_recipe_field_reaches_the_training_loop(tmp_path):
    """run() hands the whole recipe to fit: label smoothing changes the losses it records."""
    plain, smooth = (at.run(c, progress=False) for c in (TINY, TINY.replace(label_smoothing=0.3)))
    assert plain["loss"] != smooth["loss"]


def test_sweep_computes_what_is_missing_and_reuses_what_is_cached(tmp_path, counted):
    configs = at.grid(TINY, seed=[0, 1])
    first = at.sweep(configs, tmp_path, progress=False)
    assert len(counted) == 2 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(f"{c.key()}.json" for c in configs)
    assert all(0 <= r["test_acc"] <= 1 and r["config"] == c.to_dict() for r, c in zip(first, configs))
    again = at.sweep(configs + [replace(TINY, seed=2)], tmp_path, progress=False)  # one new config
    assert len(counted) == 3 and counted[-1].seed == 2
    assert again[:2] == first  # the cached results, as they were
    head = replace(TINY, method="head_only")
    at.sweep(at.grid(head, rank=[1, 2]), tmp_path, progress=False)  # one run: rank means nothing without adapters
    at.sweep([replace(head, rank=8)], tmp_path, progress=False)  # found on disk although stored with rank 1
    assert [c.method for c in counted[3:]] == ["head_only"]


def test_a_corrupt_or_partial_result_file_is_recomputed_not_used(tmp_path, counted):
    configs = at.grid(TINY, seed=[0, 1, 2])
    at.sweep(configs, tmp_path, progress=False)
    paths = [experiments.result_path(tmp_path, c) for c in configs]
    paths[0].write_text(paths[0].read_text()[:50])  # cut off mid-write
    partial = json.loads(paths[1].read_text())
    del partial["test_acc"]
    paths[1].write_text(json.dumps(partial))
    wrong = json.loads(paths[2].read_text())
    wrong["config"]["seed"] = 7  # a file that is not this config's
    paths[2].write_text(json.dumps(wrong))
    results = at.sweep(configs, tmp_path, progress=False)
    assert len(counted) == 6  # all three recomputed
    assert all(experiments.load_result(p, c) == r for p, c, r in zip(paths, configs, results))


SWEEP_SCRIPT = """
import sys, adaptertune_lite as at
tiny = at.RunConfig(dataset="digits", n_train=40, rank=2).replace(epochs=1, batch_size=20)
slow = tiny.replace(epochs=200)  # long enough to be killed while it trains
at.sweep([tiny, tiny.replace(seed=1), slow], sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_recomputing_finished_runs(tmp_path, counted):
    proc = subprocess.Popen([sys.executable, "-c", SWEEP_SCRIPT, str(tmp_path)], cwd=ROOT, start_new_session=True)
    runs = tmp_path / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 2:
        time.sleep(0.2)
    time.sleep(1)  # into the slow run
    os.killpg(proc.pid, signal.SIGKILL)  # a real kill: no cleanup code runs
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert len(finished) == 2, "the two quick runs finished and were written before the kill"
    configs = [TINY, TINY.replace(seed=1), TINY.replace(epochs=2)]  # the killed one, made quicker here
    results = at.sweep(configs, tmp_path, progress=False)
    assert [c.seed for c in counted] == [0] and counted[0].recipe.epochs == 2  # only the unfinished config ran
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json") if p.name in finished} == finished
    assert len(results) == 3


def test_the_elbow_fit_recovers_a_known_curve_and_its_elbow():
    ranks = [1, 2, 4, 8, 16, 32, 64]
    a, b, c = 0.92, 0.15, 0.8  # acc(r) = a - b r^-c
    truth = a - b * np.array(ranks, dtype=float) ** -c
    noisy = truth[:, None] + np.random.default_rng(0).normal(0, 0.002, (len(ranks), 3))  # 3 seeds
    fit = at.fit_elbow(ranks, noisy, threshold=0.015)
    assert abs(fit.a - a) < 0.01 and abs(fit.c - c) < 0.15
    assert np.allclose(fit(ranks), truth, atol=0.005)
    # the rule on the true curve: the first rank from which r=64 is less than 1.5 points better
    assert fit.elbow == next(r for r, t in zip(ranks, truth) if truth[-1] - t < 0.015) == 16
    assert at.fit_elbow(ranks, noisy, threshold=0.001).elbow == 64  # nothing flat enough: the largest rank


def test_the_elbow_fit_needs_three_ranks():
    with pytest.raises(ValueError, match="at least 3"):
        at.fit_elbow([1, 2], [0.5, 0.6])


@pytest.mark.slow
def test_the_sweep_command_runs_a_grid_and_resumes(tmp_path):
    cmd = [sys.executable, "-m", "adaptertune_lite.course.cli", "sweep", "--dataset", "digits", "--ranks", "1,2",
           "--seeds", "0", "--epochs", "1", "--n-train", "40", "--out", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 runs" in out.stdout and len(list((tmp_path / "runs").glob("*.json"))) == 2
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.stdout.splitlines()[1:] == out.stdout.splitlines()[1:]  # the same results, from the cache


@pytest.mark.slow
def test_a_sweep_through_submitits_local_executor_writes_the_same_result_files(tmp_path, counted):
    """The cluster path: each missing run is one job of an array (here submitit's local executor, which runs
    jobs as processes on this machine the way Slurm would run them on nodes)."""
    submitit = pytest.importorskip("submitit")
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=10)
    configs = at.grid(TINY, seed=[0, 1])
    results = at.sweep(configs, tmp_path, progress=False, executor=executor)
    assert counted == []  # nothing ran in this process
    assert [experiments.load_result(experiments.result_path(tmp_path, c), c) for c in configs] == results
    assert at.sweep(configs, tmp_path, progress=False) == results and counted == []  # cached now


def test_the_figures_command_finds_each_sweep_in_the_courses_one_cache(tmp_path):
    runs = tmp_path / "runs"
    at.sweep(at.grid(TINY, rank=[1, 2, 4]), runs, progress=False)  # notebook 05's kind of sweep
    assert main(["figures", "--out", str(tmp_path / "fig"), "--runs", str(runs)]) == 0
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["lecture_elbow.png", "lecture_elbow.svg", "rank_elbow.png", "rank_elbow.svg"]  # one placement: no figure
    assert all((tmp_path / "fig" / n).stat().st_size > 1000 for n in names)
    at.sweep(at.grid(TINY, placement=["parallel", "houlsby"]), runs, progress=False)  # then notebook 06's, in the same cache
    assert main(["figures", "--out", str(tmp_path / "fig"), "--runs", str(runs)]) == 0
    assert {"placement.png", "placement.svg"} <= {p.name for p in (tmp_path / "fig").iterdir()}


# ----------------------------------------------------------------------------- a robust elbow
def test_the_robust_elbow_is_the_first_rank_with_most_of_the_gain_not_the_last_grid_point():
    ranks = [1, 2, 4, 8, 16, 32, 64]
    curve = np.array([0.60, 0.70, 0.78, 0.84, 0.88, 0.89, 0.90])  # gain 0.30; 90 % of it = 0.87, first reached at r = 16
    e = at.robust_elbow(ranks, curve[:, None] + np.array([0.0, 0.002, -0.002]))  # three seeds, tiny noise
    assert (e.rank, e.n_seeds, e.max_rank, e.per_seed) == (16, 3, 64, (16, 16, 16)) and e.rises
    assert "r = 16" in e.sentence() and "per-seed elbows r = 16, 16, 16" in e.sentence() and "95 %" not in e.sentence()
    one = at.robust_elbow(ranks, curve, n_test=1000)
    assert one.rank == 16 and np.isnan(one.low) and "one seed" in one.sentence() and one.noise is not None


def test_the_robust_elbow_names_no_elbow_for_a_falling_or_a_flat_curve():
    """A curve going 66.7 -> 33.3 % used to print 'reached at r = 1' (then 'As expected')."""
    ranks = [1, 2, 4, 8]
    falling = at.robust_elbow(ranks, np.array([0.667, 0.55, 0.45, 0.333]), n_test=300)
    assert not falling.rises and falling.sentence().startswith("No gain to summarise")
    flat = np.array([[0.850, 0.845], [0.852, 0.85], [0.855, 0.848], [0.856, 0.851]])  # +0.6 points; 1,000 test images
    assert not at.robust_elbow(ranks, flat, n_test=1000).rises  # binomial noise alone is about ±2.2 points
    assert at.robust_elbow(ranks, flat).rises  # without the test set's noise the seeds alone would call it a gain


def test_the_robust_elbow_says_when_it_moves_with_the_largest_rank():
    """Moving r = 64 by half a point (inside its seed spread) moved the full-recipe elbow from 8 to 32."""
    ranks = [1, 2, 4, 8, 16, 32, 64]
    curve = np.array([0.923, 0.930, 0.936, 0.941, 0.943, 0.945, 0.952])
    e = at.robust_elbow(ranks, curve[:, None] + np.array([0.0, 0.004, -0.004]))
    assert e.without_largest is not None and e.without_largest != e.rank and "depends on that endpoint" in e.sentence()
    steady = at.robust_elbow(ranks, np.array([0.60, 0.70, 0.78, 0.84, 0.88, 0.89, 0.90]))
    assert "depends" not in steady.sentence()


def test_the_per_seed_elbows_show_when_the_seeds_disagree_and_a_late_gain_has_no_elbow():
    ranks = [1, 2, 4, 8]
    noisy = np.array([[0.5, 0.5, 0.5], [0.6, 0.6, 0.6], [0.95, 0.6, 0.95], [0.95, 0.95, 0.95]])  # the seeds disagree at r = 4
    e = at.robust_elbow(ranks, noisy)
    assert e.per_seed == (4, 8, 4) and (e.low, e.high) == (4, 8)
    straight = at.robust_elbow(ranks, np.array([0.1, 0.2, 0.3, 0.9]))  # all the gain at the last rank
    assert straight.rank == 8 and "no elbow within the grid" in straight.sentence()
    with pytest.raises(ValueError, match="share"):
        at.robust_elbow(ranks, noisy, share=1.5)


def test_by_rank_names_the_seeds_it_leaves_out_and_refuses_when_no_seed_is_shared():
    """by_rank used to keep only the seeds every rank has, and return NaN when none were shared, without a word."""
    def res(rank, seed):
        return {"config": {"rank": rank, "seed": seed}, "test_acc": 0.5 + rank / 100 + seed / 1000}

    ranks, acc = experiments.by_rank([res(1, 0), res(4, 0)])
    assert ranks == [1, 4] and acc.shape == (2, 1)
    with pytest.warns(UserWarning, match=r"left out: r=4 seeds \[3\]"):
        ranks, acc = experiments.by_rank([res(1, 0), res(4, 0), res(4, 3)])
    assert acc.shape == (2, 1)
    with pytest.raises(ValueError, match="no seed was run at every rank"):
        experiments.by_rank([res(1, 0), res(4, 1)])


def test_atomic_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    """Reading the umask means setting it process-wide for a moment (a race with every other thread)."""
    def no_umask(*args):
        raise AssertionError("os.umask was called")

    monkeypatch.setattr(os, "umask", no_umask)
    experiments.write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": 1} and not list((tmp_path / "a").glob(".*tmp"))


def test_the_package_ships_the_full_recipe_runs_the_notebooks_compare_against_as_the_report_has_them():
    """Notebook 05 and the lecture demo read them; they used to be read from benchmarks/, which a wheel (Colab) lacks."""
    shipped = experiments.full_recipe_elbow(experiments.FULL_RECIPE_RANKS)
    assert len(shipped) == 21 and experiments.FULL_RECIPE.is_relative_to(Path(at.__file__).parent)
    report = json.loads((ROOT / "benchmarks" / "results" / "kit_vit_tiny.json").read_text())["runs"]
    for res in shipped:  # the same runs, the same numbers
        assert (res["config"], res["val_acc"], res["test_acc"]) == tuple(report[res["key"]][k] for k in ("config", "val_acc", "test_acc"))
    assert experiments.full_recipe_elbow([1, 128]) == []  # a rank it does not have: nothing, not a partial curve
