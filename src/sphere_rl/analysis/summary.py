"""From run directories to per-run and per-method numbers: the content of ``sphere report``.

Runs are grouped into *experiments*: the same task sequence, method variant and protocol, differing
only in the seed. A method's *variant* label names the configuration keys that differ between runs
of that method (e.g. ``sphere (rho=0.01)``), so different settings are never pooled.
Only finished runs enter the summary; partial runs are summarised separately.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sphere_rl.analysis import continual_metrics as cm
from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.intervals import DEFAULT_METHOD, seed_intervals
from sphere_rl.analysis.runs import RunData

RANK_KEY = "entk/effective_rank"
PROXY_KEY = "proxy/effective_rank"
# Configuration keys that identify the experiment elsewhere (sequence, protocol, seed) or that do
# not change what is learned, so they never make a method variant.
NOT_VARIANT_KEYS = {"benchmark", "tasks", "protocol", "seed", "method", "device", "preset"}


@dataclass
class RunMetrics:
    """Every number ``sphere report`` shows for one run (NaN where undefined)."""

    run: RunData
    label: str  # method, plus the keys that set its variant apart
    average_success: float  # partial runs: over the tasks done so far
    average_performance: float
    forgetting: float
    forward_transfer: float
    rank_final: float
    rank_min: float
    own_end: np.ndarray  # per task
    final: np.ndarray  # per task: success after the last task (CRL)
    auc: np.ndarray  # per task
    forward_transfer_per_task: np.ndarray
    has_reference: bool = False


@dataclass
class ExperimentSummary:
    """One method variant under one protocol on one sequence, across seeds."""

    sequence: str
    label: str
    protocol: str
    tasks: list[str]
    runs: list[RunMetrics]
    intervals: dict[str, Interval] = field(default_factory=dict)
    # PER_TASK_METRICS key → one interval per task
    task_intervals: dict[str, list[Interval]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(m.run.seed for m in self.runs)


# Summary metrics: attribute of RunMetrics → column title.
SUMMARY_METRICS = {
    "average_success": "avg success",
    "average_performance": "avg performance (end)",
    "forgetting": "forgetting",
    "forward_transfer": "forward transfer",
    "rank_final": "final r_e(K)",
    "rank_min": "min r_e(K)",
}

# Per-task quantities: attribute of RunMetrics (one value per task) → column title.
PER_TASK_METRICS = {
    "own_end": "success at end of own training",
    "final": "success after last task",
    "auc": "AUC (own training)",
    "forward_transfer_per_task": "FT",
}


def variant_labels(runs: Sequence[RunData]) -> dict[str, str]:
    """Run path → method label: the method name, plus ``key=value`` for every configuration key
    that varies among the runs of that method on the same sequence."""
    by_method: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for run in runs:
        by_method[(run.sequence, run.method)].append(run)
    labels = {}
    for (_, method), members in by_method.items():
        keys = sorted(
            k
            for k in set().union(*(m.config for m in members))
            if k not in NOT_VARIANT_KEYS and len({repr(m.config.get(k)) for m in members}) > 1
        )
        for run in members:
            extra = ", ".join(f"{k}={_short(run.config.get(k))}" for k in keys)
            labels[str(run.path)] = f"{method} ({extra})" if extra else method
    return labels


def _short(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def reference_index(runs: Sequence[RunData]) -> dict[tuple, RunData]:
    """Finished RL runs by (configuration without protocol and device, with the seed): the
    from-scratch references for forward transfer."""
    return {
        (run.experiment_key("protocol", "device"), run.seed): run
        for run in runs
        if run.protocol == "rl" and run.finished
    }


def find_reference(run: RunData, index: dict[tuple, RunData]) -> RunData | None:
    """The RL run of the same method, configuration, seed and tasks as ``run``, if any."""
    return index.get((run.experiment_key("protocol", "device"), run.seed))


def task_aucs(run: RunData) -> np.ndarray:
    """Normalised AUC of each task's success curve during its own training."""
    return np.array(
        [
            cm.curve_auc(*run.current_task_curve(i), run.steps_per_task)
            for i in range(len(run.tasks))
        ]
    )


def compute_run_metrics(run: RunData, label: str, reference: RunData | None) -> RunMetrics:
    """All metrics of one run.

    A partial run's average success covers the tasks it finished; the sequence-level metrics
    (average performance, forgetting, forward transfer) need a finished CRL run, and forward
    transfer also its RL reference.
    """
    n = len(run.tasks)
    matrix = run.task_end_matrix()
    own = cm.own_end_success(matrix)
    complete_crl = run.protocol == "crl" and run.finished
    auc = task_aucs(run)
    ft_per_task = np.full(n, np.nan)
    if complete_crl and reference is not None:
        ft_per_task = cm.forward_transfer_per_task(auc, task_aucs(reference))
    _, ranks = run.diag_series(RANK_KEY)
    return RunMetrics(
        run=run,
        label=label,
        average_success=cm.average_success(matrix, None if run.finished else run.tasks_done),
        average_performance=cm.average_performance(matrix) if complete_crl else np.nan,
        forgetting=cm.forgetting(matrix) if complete_crl else np.nan,
        forward_transfer=cm.nanmean(ft_per_task),
        rank_final=float(ranks[-1]) if ranks.size else np.nan,
        rank_min=float(ranks.min()) if ranks.size else np.nan,
        own_end=own,
        final=matrix[-1] if complete_crl else np.full(n, np.nan),
        auc=auc,
        forward_transfer_per_task=ft_per_task,
        has_reference=reference is not None,
    )


def experiment_intervals(
    members: Sequence[RunMetrics], n_tasks: int, reps: int, method: str = DEFAULT_METHOD
) -> tuple[dict[str, Interval], dict[str, list[Interval]]]:
    """Intervals across seeds (``method``: t, bca or percentile) of every summary metric and
    every per-task quantity, computed together (one column each)."""
    columns = [[getattr(m, key) for m in members] for key in SUMMARY_METRICS]
    for key in PER_TASK_METRICS:
        columns += [[getattr(m, key)[i] for m in members] for i in range(n_tasks)]
    cis = iter(seed_intervals(np.array(columns, dtype=float).T, method, reps=reps))
    intervals = {key: next(cis) for key in SUMMARY_METRICS}
    per_task = {key: [next(cis) for _ in range(n_tasks)] for key in PER_TASK_METRICS}
    return intervals, per_task


@dataclass
class Summary:
    """Everything a report shows: experiments built from finished runs, partial runs apart."""

    experiments: list[ExperimentSummary]
    partial: list[RunMetrics]
    notes: list[str]
    interval: str = DEFAULT_METHOD  # how the intervals across seeds were computed


def summarize(
    runs: Sequence[RunData], reps: int = 10_000, interval: str = DEFAULT_METHOD
) -> Summary:
    """Group finished runs into experiments with intervals across seeds (``interval``: t, bca or
    percentile); keep partial runs (running, failed, interrupted) in a list of their own."""
    labels = variant_labels(runs)
    references = reference_index(runs)
    groups: dict[tuple[str, str, str], list[RunMetrics]] = defaultdict(list)
    partial, notes = [], []
    for run in runs:
        reference = find_reference(run, references) if run.protocol == "crl" else None
        metrics = compute_run_metrics(run, labels[str(run.path)], reference)
        if run.finished:
            groups[(run.sequence, metrics.label, run.protocol)].append(metrics)
        else:
            partial.append(metrics)
    experiments = []
    for (sequence, label, protocol), members in sorted(groups.items()):
        members.sort(key=lambda m: m.run.seed)
        tasks = members[0].run.tasks
        intervals, task_intervals = experiment_intervals(members, len(tasks), reps, interval)
        experiment = ExperimentSummary(
            sequence, label, protocol, tasks, members, intervals, task_intervals
        )
        experiments.append(experiment)
        notes += experiment_notes(experiment)
    return Summary(experiments, partial, notes, interval)


def experiment_notes(exp: ExperimentSummary) -> list[str]:
    """What a reader must know to trust an experiment's row: missing FT references, undefined
    FT terms, repeated seeds."""
    notes, where = [], f"{exp.sequence} / {exp.label}"
    if exp.protocol == "crl":
        missing = [m.run.seed for m in exp.runs if not m.has_reference]
        if missing:
            notes.append(
                f"{where}: no finished RL run for seed(s) {missing}, so no forward transfer for"
                " them."
            )
        undefined = sum(
            int(np.isnan(m.forward_transfer_per_task).sum()) for m in exp.runs if m.has_reference
        )
        if undefined:
            notes.append(
                f"{where}: FT_i undefined for {undefined} task-seed pair(s) (the RL reference"
                " solved the task from its first evaluation, AUC = 1); left out of the mean."
            )
    if len(set(exp.seeds)) < len(exp.seeds):
        notes.append(f"{where} / {exp.protocol}: repeated seeds {exp.seeds}.")
    return notes
