"""Whether runs pooled into one analysis were trained alike: code state, packages, CPU
(capability, and model with the numeric environment variables), learner threads (from the ``segments`` of each run's run.json).

:func:`summarize_provenance` is a pure function over run records; ``sphere report`` and
``sphere mechanism`` print its summary, warn when the runs differ and, with ``--strict``, refuse
them (:meth:`ProvenanceSummary.strict_problem`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sphere_rl.analysis.runs import RunData
from sphere_rl.provenance import CODE_PATH_ENV

# What must agree between pooled runs, in the order they are reported.
FIELDS = ("commit", "packages", "cpu_capability", "cpu", "threads")
_TITLES = {
    "commit": "commits",
    "packages": "package sets",
    "cpu_capability": "CPU capabilities",
    "cpu": "CPU models and numeric settings",
    "threads": "learner threads",
}


def segment_facts(segment: dict[str, Any]) -> dict[str, str]:
    """The compared facts of one run.json segment, as display strings.

    ``commit`` is 12 hex digits, with ``+dirty:<diff hash>`` for an uncommitted tree (two dirty
    trees with different edits differ); ``threads`` is the learner's maximum intra-op thread
    count (``torch_threads``, or torch's default where that is 0). ``cpu`` names the CPU by vendor,
    family and model numbers, plus any variable of
    :data:`~sphere_rl.provenance.CODE_PATH_ENV` that was set (``MKL_CBWR=AVX2``): MKL's code path,
    and so the run's floats, depend on both.
    """
    git = segment.get("git")
    if isinstance(git, dict):
        commit = str(git.get("commit", "?"))[:12]
        if git.get("dirty"):
            commit += f"+dirty:{str(git.get('diff_sha256') or '?')[:8]}"
    else:
        commit = str(git)  # "not a git checkout"
    versions = {"sphere_rl": segment.get("version"), "python": segment.get("python")}
    versions.update(segment.get("packages") or {})
    packages = " ".join(f"{k}={v}" for k, v in sorted(versions.items()) if v is not None)
    facts = segment.get("torch") or {}
    threads = segment.get("torch_threads") or facts.get("intra_op_threads")
    return {
        "commit": commit,
        "packages": packages,
        "cpu_capability": str(facts.get("cpu_capability")),
        "cpu": _cpu_fact(segment),
        "threads": str(threads),
    }


def _cpu_fact(segment: dict[str, Any]) -> str:
    cpu_id = segment.get("cpu_id")
    if isinstance(cpu_id, dict):
        shown = f"{cpu_id.get('vendor')} family {cpu_id.get('family')} model {cpu_id.get('model')}"
    else:  # recorded before cpu_id existed: the model name is all there is
        shown = str(segment.get("cpu"))
    settings = segment.get("numeric_env") or {}
    pinned = [f"{k}={settings[k]}" for k in CODE_PATH_ENV if k in settings]
    return " ".join([shown, *pinned])


def run_segments(run: RunData) -> list[dict[str, Any]] | None:
    """The segments of ``run`` if its whole training is covered (the first starts at step 0);
    None for unknown provenance (run.json from an older version, or resumed by one)."""
    segments = run.info.get("segments")
    if not segments or segments[0].get("start_step") != 0:
        return None
    return segments


@dataclass
class ProvenanceSummary:
    """Distinct values of each compared field, with the runs that have them."""

    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # field → value → runs
    unknown: list[str] = field(default_factory=list)  # runs without (complete) provenance
    dirty: list[str] = field(default_factory=list)  # runs trained (partly) from a dirty tree
    threaded: list[str] = field(default_factory=list)  # runs with learner threads > 1

    @property
    def differing(self) -> list[str]:
        """Fields with more than one value among the runs."""
        return [f for f in FIELDS if len(self.values.get(f, {})) > 1]

    def lines(self) -> list[str]:
        """A short human summary, one line per field (plus unknown provenance)."""
        lines = []
        for name in FIELDS:
            values = self.values.get(name, {})
            if values:
                listed = "; ".join(f"{v} ({len(runs)} run(s))" for v, runs in values.items())
                lines.append(f"{_TITLES[name]}: {listed}")
        if self.unknown:
            lines.append(f"unknown provenance (older run.json): {len(self.unknown)} run(s)")
        return lines

    def warnings(self) -> list[str]:
        """One line per reason the pooled runs may not be comparable (empty when none)."""
        found = [
            f"the runs differ in {_TITLES[f]}: {_listing(self.values[f])}" for f in self.differing
        ]
        if self.dirty:
            found.append(f"trained from an uncommitted tree: {', '.join(self.dirty)}")
        if self.threaded:
            found.append("learner threads > 1 (not bit-reproducible): " + ", ".join(self.threaded))
        return found

    def strict_problem(self) -> str | None:
        """One line for ``--strict``: every reason to refuse pooling these runs, or None."""
        problems = self.warnings()
        if self.unknown:
            problems.append(f"unknown provenance (older run.json): {', '.join(self.unknown)}")
        if not problems:
            return None
        return "--strict refuses to pool these runs: " + "; ".join(problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "unknown": self.unknown,
            "dirty": self.dirty,
            "threaded": self.threaded,
            "differing": self.differing,
        }


def _listing(values: dict[str, list[str]]) -> str:
    return "; ".join(f"{value} ({', '.join(runs)})" for value, runs in values.items())


def summarize_provenance(runs: Sequence[RunData]) -> ProvenanceSummary:
    """Compare the provenance of ``runs`` (every segment of each counts)."""
    summary = ProvenanceSummary(values={f: {} for f in FIELDS})
    for run in runs:
        segments = run_segments(run)
        if segments is None:
            summary.unknown.append(run.name)
            threads = int(run.config.get("torch_threads", 1))
            if threads != 1:  # 0: torch's default, all cores
                summary.threaded.append(run.name)
            continue
        facts = [segment_facts(s) for s in segments]
        for name in FIELDS:
            for value in dict.fromkeys(f[name] for f in facts):
                summary.values[name].setdefault(value, []).append(run.name)
        if any("+dirty" in f["commit"] for f in facts):
            summary.dirty.append(run.name)
        if any(f["threads"] not in ("1", "None") for f in facts):
            summary.threaded.append(run.name)
    summary.values = {f: v for f, v in summary.values.items() if v}
    return summary


__all__ = ["FIELDS", "ProvenanceSummary", "run_segments", "segment_facts", "summarize_provenance"]
