"""Figures a lecturer projects: no label may hide another, however many runs share a parameter count."""

import itertools

import matplotlib

matplotlib.use("Agg")

from adaptertune_lite.course import plots  # noqa: E402  (after choosing the backend)


def _result(placement: str, blocks: str, acc: float, params: int, seed: int = 0) -> dict:
    return {"config": {"placement": placement, "blocks": blocks, "seed": seed}, "test_acc": acc,
            "trainable_params": params, "wall_time_s": 11.0 + seed}


def test_placement_labels_never_overlap_even_when_runs_share_their_parameter_count_and_accuracy():
    same = [("post_block", "all"), ("post_mlp", "all"), ("post_attn", "all"), ("parallel", "all")]  # 40k params each
    results = [_result(p, b, 0.867, 40_042, seed) for p, b in same for seed in (0, 1, 2)]
    results += [_result("houlsby", "all", 0.866, 78_000), _result("post_block", "last:2", 0.67, 15_000)]
    fig = plots.placement_figure(results, highlight={"placement": "parallel", "blocks": "all"})
    fig.canvas.draw()
    ax = fig.axes[0]
    texts = [t for t in [*ax.texts, *ax.get_yticklabels()] if t.get_text()]
    assert len(ax.get_yticklabels()) == 6  # one row per (placement, blocks), seeds averaged
    boxes = [t.get_window_extent() for t in texts]
    assert not [(a, b) for a, b in itertools.combinations(range(len(boxes)), 2) if boxes[a].overlaps(boxes[b])]
    width = fig.bbox.width
    assert all(0 <= t.get_window_extent().x0 and t.get_window_extent().x1 <= width for t in [*texts, ax.title, ax._right_title])
