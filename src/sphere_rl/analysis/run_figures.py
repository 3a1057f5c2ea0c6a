"""A single run's own figures, drawn into ``<run_dir>/figures/`` when a tracked run finishes.

The figures are ``sphere demo``'s single-run figures (:func:`~sphere_rl.analysis.plots.draw_success`
and :func:`~sphere_rl.analysis.plots.draw_plasticity`) for this run alone, as PNG, written
atomically like every other file of a run directory. Drawing is best effort: a figure that cannot
be drawn is reported as one line, never raised, because a finished run must stay finished.
Importing this module imports matplotlib (Agg backend, through :mod:`sphere_rl.analysis.plots`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sphere_rl.analysis import plots
from sphere_rl.analysis.runs import RunData, load_run

FIGURES_DIR = "figures"


@dataclass(frozen=True)
class RunFigures:
    """What :func:`draw_run_figures` produced: the PNG files written, and one line per figure
    that could not be drawn."""

    written: tuple[Path, ...]
    problems: tuple[str, ...]


def _success(run: RunData) -> Figure | None:
    return plots.draw_success([run]) if run.evals else None


def _plasticity(run: RunData) -> Figure | None:
    # Only the ranks the run measured: r_e(K) needs diag_entk, r_e(A) an MoE actor.
    keys = [key for key in plots.PLASTICITY_KEYS if run.diag_series(key)[0].size]
    return plots.draw_plasticity([run], keys) if keys else None


# Each draws the run's figure, or None when the run has nothing to draw in it (no evaluations, no
# diagnostics): such a figure is left out rather than drawn empty.
_FIGURES: dict[str, Callable[[RunData], Figure | None]] = {
    "success": _success,
    "plasticity": _plasticity,
}


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def draw_run_figures(run_dir: Path) -> RunFigures:
    """Draw the figures of the run in ``run_dir`` into ``run_dir/figures/<name>.png``.

    Never raises for a figure that fails (a damaged metrics file, a plotting error): each failure
    becomes one line of :attr:`RunFigures.problems` and the other figures are still drawn."""
    run_dir = Path(run_dir)
    try:
        run = load_run(run_dir)
    except Exception as err:  # best effort: the run is finished whatever its figures do
        return RunFigures((), (f"the figures of {run_dir} were not drawn ({_one_line(err)})",))
    written, problems = [], []
    for name, draw in _FIGURES.items():
        opened = set(plt.get_fignums())
        try:
            fig = draw(run)
            if fig is not None:
                written.append(plots.save_figure(fig, run_dir / FIGURES_DIR / name, ("png",)))
        except Exception as err:
            problems.append(f"figure {name} of {run_dir} was not drawn ({_one_line(err)})")
        finally:
            # A figure that failed half-drawn stays open in pyplot (a sweep worker trains many runs).
            for number in set(plt.get_fignums()) - opened:
                plt.close(number)
    return RunFigures(tuple(written), tuple(problems))
