"""Widgets: their callbacks run real (tiny) experiments and redraw; the static figures they wrap stand alone."""

import matplotlib

matplotlib.use("Agg")

import subprocess
import sys
from pathlib import Path

import pytest  # noqa: E402

import adaptertune_lite as at  # noqa: E402
from adaptertune_lite.course import widgets  # noqa: E402
from helpers import ROOT  # noqa: E402

pytest.importorskip("ipywidgets")
TINY = at.RunConfig(dataset="digits", n_train=40).replace(epochs=1, batch_size=20)


def test_the_static_elbow_figure_has_the_fit_and_the_elbow(tmp_path):
    results = at.course.experiments.run_elbow(TINY, [1, 2, 4], [0], tmp_path, progress=False)
    fig = at.course.plots.elbow_figure(results, title="tiny")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("fitted curve") for label in labels)
    assert any(label.startswith(("elbow r=", "no elbow up to r=4", "no gain beyond the noise")) for label in labels)  # an elbow, or why none
    assert fig.axes[0].get_xlabel().startswith("adapter rank")


def test_elbow_explorer_run_button_trains_the_chosen_grid_and_redraws(tmp_path):
    explorer = widgets.ElbowExplorer(TINY, tmp_path, ranks=[1, 2, 4], chosen=[1, 2], n_trains=[20, 40])
    explorer.button.click()  # what a click in JupyterLab does
    first = explorer.figure
    assert [r["config"]["rank"] for r in explorer.results] == [1, 2] and first is not None
    explorer.ranks.value, explorer.n_train.value = (1, 2, 4), 20
    explorer.button.click()
    assert explorer.figure is not first and len(explorer.results) == 3
    assert {r["config"]["n_train"] for r in explorer.results} == {20}
    assert explorer.figure.axes[0].get_title() == "digits: 20 training images, 1 epoch"  # the budget the curve comes from
    explorer.ranks.value = ()
    explorer.button.click()
    assert "at least one rank" in explorer.status.value


def test_the_explorer_starts_from_the_profiles_own_training_set_size():
    """The explorers used to train on 1,000 images whenever the profile's n_train (the paper profile's FAST 32, or
    all images) was not one of the offered choices, without a word."""
    for n_train, label in ((32, "32"), (None, "all")):
        explorer = widgets.ElbowExplorer(TINY.replace(n_train=n_train), "unused", n_trains=[250, 500, 1000])
        assert explorer.config().n_train == n_train and explorer.n_train.label == label


def test_lecture_demo_slider_redraws_and_run_live_adds_a_seed(tmp_path, monkeypatch):
    shipped = at.course.experiments.run_elbow(TINY, [1, 2, 4], [0], tmp_path / "shipped", progress=False)
    demo = widgets.LectureDemo(shipped, TINY, tmp_path / "live", full_params=5_000_000)
    before = demo.figure
    demo.slider.value = 4
    assert demo.figure is not before and "r = 4" in demo.figure.axes[0].texts[-1].get_text()
    assert "1 epochs on 40 training images of digits, 1 seed per rank" in demo.caption.value  # the budget, in words
    seen, real = [], at.course.experiments.run_elbow  # what the room sees while the live run trains
    monkeypatch.setattr(widgets.experiments, "run_elbow", lambda *a, **k: seen.append(
        (demo.button.disabled, demo.button.description, demo.status.value)) or real(*a, **k))
    demo.button.click()
    assert seen == [(True, "Running…", "training seed 1 at 3 ranks…")]
    assert not demo.button.disabled and demo.button.description == "Run live" and "added seed 1" in demo.status.value
    assert sorted({r["config"]["seed"] for r in demo.results}) == [0, 1] and len(demo.results) == 6
    assert "2 seeds per rank" in demo.caption.value


def test_a_failing_run_says_so_and_gives_the_button_back(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell  # noqa: PLC0415  (only this test needs a shell)

    InteractiveShell.instance()  # as in Jupyter: an Output widget then shows and swallows errors raised inside it
    explorer = widgets.PlacementExplorer([], TINY, tmp_path)
    monkeypatch.setattr(widgets.experiments, "sweep", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
    explorer.button.click()  # ipywidgets shows a callback's error as a traceback; the widget must recover
    assert not explorer.button.disabled and explorer.button.description == "Run"
    assert explorer.status.value == "failed: out of memory"


def test_the_lecture_demo_ships_its_results_with_provenance():
    shipped = at.course.experiments.SHIPPED / "lecture_elbow"
    results = at.course.experiments.load_results(shipped)
    ranks, acc = at.course.experiments.by_rank(results)
    assert ranks == [1, 2, 4, 8, 16, 32, 64] and acc.shape == (7, 3)
    prov = (shipped / "provenance.json").read_text()
    assert "adaptertune-lite sweep" in prov and '"machine"' in prov
    assert (ROOT / "notebooks" / "lecture_elbow_demo.py").is_file()


def test_placement_explorer_runs_the_chosen_placement_and_circles_it(tmp_path):
    start = at.sweep([TINY], tmp_path, progress=False)
    explorer = widgets.PlacementExplorer(start, TINY, tmp_path)
    explorer.placement.value, explorer.blocks.value = "houlsby", "last:2"
    explorer.button.click()
    assert [(r["config"]["placement"], r["config"]["blocks"]) for r in explorer.results] == [("post_block", "all"), ("houlsby", "last:2")]
    circled = [c for c in explorer.figure.axes[0].collections if c.get_sizes().tolist() == [400]]
    assert len(circled) == 1
    explorer.button.click()  # the same choice again: loaded from disk, not added twice
    assert len(explorer.results) == 2


@pytest.mark.slow
def test_the_widget_callbacks_also_work_under_ipywidgets_7_as_colab_ships_it():
    """Colab ships ipywidgets 7.7.1; this suite runs 8.x. Install 7.7.1 beside the environment (once, from the
    package index) and run the widget tests above again with it first on the path."""
    target = Path(sys.prefix) / "ipywidgets-7.7.1"
    if not (target / "ipywidgets").is_dir():
        out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              "ipywidgets==7.7.1", "ipython_genutils"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True)
    assert version.stdout.strip() == "7.7.1", version.stderr
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not ipywidgets_7"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and " passed" in out.stdout, out.stdout[-3000:]


def test_the_lecture_demo_is_one_message_per_slide():
    """For presenting, each numbered section is one slide: one heading that makes one point, then the one cell whose
    output shows it (the set-up cells come before the first slide)."""
    import json  # noqa: PLC0415

    cells = json.loads((ROOT / "notebooks" / "lecture_elbow_demo.ipynb").read_text())["cells"]
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## ")]
    titles = ["".join(cells[i]["source"]).splitlines()[0] for i in heads]
    assert titles == [f"## {n} · {t}" for n, t in enumerate(["These are real runs", "What rank buys", "Try any rank, or train it live",
                                                            "The budget shapes the curve"], 1)]
    for i, j in zip(heads, heads[1:] + [len(cells)]):
        assert [c["cell_type"] for c in cells[i + 1:j]] == ["code"]  # one output per slide
        assert sum(line.startswith("#") for line in cells[i]["source"]) == 1  # one heading: one message
