"""Figure content, checked on the matplotlib objects and on the saved files."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from PIL import Image
from synthetic_runs import CRL_CURVES, CRL_MATRIX, STEPS_PER_TASK, TASKS, write_run

from sphere_rl.analysis import plots
from sphere_rl.analysis.runs import find_runs, load_run
from sphere_rl.analysis.summary import summarize


def _experiments(root, protocol="crl"):
    return [e for e in summarize(find_runs(root), reps=200).experiments if e.protocol == protocol]


def _rendered(fig):
    fig.tight_layout()
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _segments(ys: np.ndarray) -> list[np.ndarray]:
    """Index runs of finite values: what matplotlib draws as separate pieces of one line."""
    finite = np.isfinite(ys)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(int), [0]])))
    return [np.arange(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _check_layout(fig, run_names=()):
    """Every axes has a y label; legends sit outside every axes; no run-directory name appears in
    any legend or title; the task-name axis labels the boundaries."""
    renderer = _rendered(fig)
    axes = fig.axes
    assert axes
    for ax in axes:
        assert ax.get_ylabel(), ax.get_title()
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            for other in axes:
                assert not box.overlaps(other.get_window_extent(renderer)), "legend covers data"
            texts = [t.get_text() for t in legend.get_texts()]
            assert not set(texts) & set(run_names)
    titles = [ax.get_title() for ax in axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert not any(name in title for title in titles for name in run_names)


def test_plasticity_is_one_segment_per_task_with_method_legends(mixed_runs):
    experiments = _experiments(mixed_runs)
    fig = plots.draw_plasticity_by_method(experiments)
    _check_layout(fig, [p.name for p in mixed_runs.iterdir()])
    ax_rank, ax_proxy = fig.axes
    assert ax_rank.get_ylabel() == "r_e(K)" and ax_proxy.get_ylabel() == "r_e(A)"
    assert [t.get_text() for t in ax_proxy.get_legend().get_texts()] == ["ppo", "sphere"]
    for k, exp in enumerate(experiments):
        lines = [ln for ln in ax_rank.get_lines() if ln.get_gid() == "segment"
                 and ln.get_color() == f"C{k}"]  # fmt: skip
        assert len(lines) == len(TASKS), exp.label  # one per task, none across a boundary
        for t, line in enumerate(lines):
            xs = line.get_xdata()
            assert (xs > t * STEPS_PER_TASK).all() and (xs <= (t + 1) * STEPS_PER_TASK).all()
        # The values are the seed means of what the runs logged (both seeds logged the same
        # ranks: 30 - 2i for ppo, 30 - 0.5i for sphere, 4 diagnostics per task).
        slope = 2.0 if exp.label == "ppo" else 0.5
        np.testing.assert_allclose(lines[1].get_ydata(), 30 - slope * np.arange(4, 8))
    # Task names on a top axis at the task boundaries.
    (top,) = [c for c in ax_rank.child_axes if c.get_gid() == "task-axis"]
    assert list(top.get_xticks()) == [0, STEPS_PER_TASK, 2 * STEPS_PER_TASK]
    assert [t.get_text() for t in top.get_xticklabels()] == list(TASKS)


def test_success_curves_break_where_a_task_was_not_evaluated(mixed_runs):
    fig = plots.draw_success_by_method(_experiments(mixed_runs))
    _check_layout(fig, [p.name for p in mixed_runs.iterdir()])
    ax = fig.axes[0]
    assert ax.get_title().startswith("ppo: CRL (2 seeds)")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(TASKS)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == TASKS[2]]
    # CRL evaluates a future task only at task ends (400, 800), then periodically once trained:
    # three pieces, never a line drawn through the periodic evaluations it did not have.
    pieces = [line.get_xdata()[i].tolist() for i in _segments(np.asarray(line.get_ydata()))]
    assert pieces == [[400], [800, 900, 1000, 1100, 1200]]


def test_a_missing_evaluation_leaves_a_gap(tmp_path):
    run_dir = write_run(tmp_path, matrix=CRL_MATRIX, curves=CRL_CURVES)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if not ('"eval"' in ln and json.loads(ln)["global_step"] == 200)]
    (run_dir / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    fig = plots.draw_success([load_run(run_dir)])
    _check_layout(fig, [run_dir.name])
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == TASKS[0]]
    pieces = [line.get_xdata()[i].tolist() for i in _segments(np.asarray(line.get_ydata()))]
    assert pieces[0] == [100] and pieces[1][:2] == [300, 400]
    assert fig.axes[0].get_title() == "sphere: CRL"  # the method, not the directory name


def _bar_runs(tmp_path):
    """ppo: 2 seeds, CRL success exactly 0 and RL 0.5; sphere: 1 seed per protocol."""
    zero = np.zeros((3, 3))
    for seed in (0, 1):
        write_run(tmp_path, method="ppo", seed=seed, matrix=zero, curves=CRL_CURVES)
        write_run(tmp_path, method="ppo", protocol="rl", seed=seed, matrix=np.diag([0.4, 0.5, 0.6]),
                  curves=CRL_CURVES)  # fmt: skip
    write_run(tmp_path, method="sphere", matrix=CRL_MATRIX, curves=CRL_CURVES)
    write_run(tmp_path, method="sphere", protocol="rl", matrix=CRL_MATRIX, curves=CRL_CURVES)
    return summarize(find_runs(tmp_path), reps=200).experiments


def test_rl_vs_crl_bars(tmp_path):
    experiments = _bar_runs(tmp_path)
    fig = plots.draw_rl_vs_crl(experiments)
    renderer = _rendered(fig)
    _check_layout(fig, [p.name for p in tmp_path.iterdir()])
    ax = fig.axes[0]
    # Zero bars are visible: a thick mark at zero spanning the bar.
    (marks,) = [c for c in ax.collections if c.get_gid() == "zero-bars-crl"]
    assert isinstance(marks, LineCollection)
    ((x0, y0), (x1, y1)) = marks.get_segments()[0]
    assert y0 == y1 == 0 and x1 - x0 > 0.3 and marks.get_linewidth()[0] >= 2
    assert ax.get_ylim()[0] < 0  # the mark is not hidden under the bottom spine
    # Value labels above every bar.
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == "value-label")
    assert labels == sorted(["0.00\nn=2", "0.50\nn=2", "0.90\nn=1", "0.90\nn=1"])
    # Whiskers only for the two-seed method (ppo), under both protocols.
    for protocol in ("rl", "crl"):
        (whiskers,) = [c for c in ax.collections if c.get_gid() == f"whiskers-{protocol}"]
        ((x, low), (_, high)) = whiskers.get_segments()[0]
        assert len(whiskers.get_segments()) == 1 and x < 0.5 and low <= high  # at ppo (x=0)
    # The title is whole and inside the figure.
    title = ax.title
    assert title.get_text() == "Average success, RL vs CRL on reach-v3+push-v3+window-close-v3"
    assert fig.bbox.contains(*title.get_window_extent(renderer).p0)
    assert fig.bbox.contains(*title.get_window_extent(renderer).p1)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["RL", "CRL", "whiskers: 95% t-interval,\nn = 2 seeds"]


def test_saved_files_png_dpi_pdf_svg(tmp_path):
    experiments = _bar_runs(tmp_path / "runs")
    png = plots.plot_rl_vs_crl(experiments, tmp_path / "fig" / "bars.png")
    assert png == tmp_path / "fig" / "bars.png"
    with Image.open(png) as image:
        assert min(image.info["dpi"]) >= 200 and image.size[0] > 1000
    pdf, svg = png.with_suffix(".pdf"), png.with_suffix(".svg")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5_000
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    ids = {el.get("id") for el in root.iter()}
    # The saved vector figure holds the zero mark, the whiskers and the value labels as drawn.
    assert {"zero-bars-crl", "whiskers-rl", "whiskers-crl"} <= ids
    assert "value-label" in ids
    assert not list(png.parent.glob("*.tmp*"))  # atomic writes leave no temporaries
    only_png = plots.plot_rl_vs_crl(experiments, tmp_path / "png" / "bars.png", formats=("png",))
    assert [p.name for p in only_png.parent.iterdir()] == ["bars.png"]


def test_entk_matrix_heatmap_cells():
    matrix = np.array([[10.0, 8.0], [np.nan, 12.5]])
    fig = plots.draw_entk_matrices([("sphere: CRL (1 seed)", ["a", "b"], matrix)])
    _check_layout(fig)
    ax = fig.axes[0]
    image = ax.get_images()[0].get_array()
    assert image.mask[1, 0] and np.allclose(image[~image.mask], [10.0, 8.0, 12.5])
    assert sorted(t.get_text() for t in ax.texts) == ["10.0", "12.5", "8.0"]
    assert ax.get_ylabel() == "checkpoint after task i" and ax.get_title() == "sphere: CRL (1 seed)"


@pytest.mark.parametrize("draw", ["routing", "single_plasticity"])
def test_other_figures_follow_the_layout_rules(mixed_runs, draw):
    if draw == "routing":
        fig = plots.draw_routing_heatmaps(
            [e for e in _experiments(mixed_runs) if e.label == "sphere"]
        )
    else:
        fig = plots.draw_plasticity([load_run(p) for p in sorted(mixed_runs.iterdir())[:2]])
        labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
        assert labels == ["ppo (CRL, seed 0)", "ppo (CRL, seed 1)"]
    _check_layout(fig, [p.name for p in mixed_runs.iterdir()])
