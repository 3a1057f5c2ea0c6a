"""Provenance facts of a training session (sphere_rl.provenance) and their comparison across
pooled runs (sphere_rl.analysis.provenance)."""

import datetime
import subprocess
from pathlib import Path

import pytest
import torch

from sphere_rl.analysis.provenance import summarize_provenance
from sphere_rl.analysis.runs import RunData
from sphere_rl.provenance import (
    NOT_GIT,
    PACKAGES,
    collect_provenance,
    cpu_identity,
    git_state,
    numeric_environment,
    nvidia_driver,
    torch_facts,
)


def test_collect_provenance_fields_and_types():
    facts = collect_provenance(["sphere", "train", "--seed", "3"])
    assert facts["argv"] == ["sphere", "train", "--seed", "3"]
    assert isinstance(facts["version"], str) and isinstance(facts["python"], str)
    assert facts["git"] == NOT_GIT or set(facts["git"]) == {"commit", "dirty", "diff_sha256"}
    assert set(facts["packages"]) == set(PACKAGES)
    assert facts["packages"]["torch"] is not None  # installed: a version string
    assert all(v is None or isinstance(v, str) for v in facts["packages"].values())
    assert facts["torch"]["intra_op_threads"] == torch.get_num_threads()
    assert facts["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(facts["torch"]["build"], dict)
    assert isinstance(facts["host"], str) and isinstance(facts["cpu"], str)
    assert facts["cpu_id"] == cpu_identity()
    assert facts["numeric_env"] == numeric_environment()
    start = datetime.datetime.fromisoformat(facts["start"])
    assert start.utcoffset() == datetime.timedelta(0)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_git_state_marks_an_uncommitted_tree_dirty(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("*.log\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_state(repo / "pkg") == {"commit": head, "dirty": False, "diff_sha256": None}
    (repo / "pkg" / "x.log").write_text("ignored files do not count\n")
    assert git_state(repo / "pkg")["dirty"] is False
    (repo / "pkg" / "mod.py").write_text("x = 2\n")
    edited = git_state(repo / "pkg")
    assert edited["commit"] == head and edited["dirty"] is True and len(edited["diff_sha256"]) == 64
    (repo / "pkg" / "new.py").write_text("")
    untracked = git_state(repo / "pkg" / "mod.py")  # a file's checkout is found too
    assert untracked["dirty"] is True and untracked["diff_sha256"] != edited["diff_sha256"]


def test_git_state_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    assert git_state(tmp_path) == NOT_GIT
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_state(Path(__file__).parent) == NOT_GIT


# ------------------------------------------------------------------ comparison of pooled runs
def _segment(
    commit="a" * 40, dirty=False, numpy="2.0", capability="AVX2", threads=1, start=0, **extra
):
    return {
        **extra,
        "version": "0.1.0",
        "python": "3.11.7",
        "git": {"commit": commit, "dirty": dirty, "diff_sha256": "d" * 64 if dirty else None},
        "packages": {"torch": "2.5", "numpy": numpy, "envpool": None},
        "torch": {"cpu_capability": capability, "intra_op_threads": 4},
        "torch_threads": threads,
        "start_step": start,
    }


def _run(name: str, *segments, torch_threads: int = 1) -> RunData:
    info = {"tasks": ["reach-v3"]}
    if segments:
        info["segments"] = list(segments)
    config = {"seed": 0, "method": "sphere", "torch_threads": torch_threads}
    return RunData(Path(name), config, ["reach-v3"], {}, [], [], [], info=info)


def test_identical_runs_pass_strict():
    summary = summarize_provenance([_run("a", _segment()), _run("b", _segment())])
    assert summary.differing == [] and summary.warnings() == []
    assert summary.strict_problem() is None
    assert summary.values["commit"] == {"a" * 12: ["a", "b"]}
    assert summary.values["threads"] == {"1": ["a", "b"]}


@pytest.mark.parametrize(
    ("other", "field", "shown"),
    [
        (_segment(commit="b" * 40), "commits", "bbbbbbbbbbbb (b)"),
        (_segment(numpy="2.1"), "package sets", "numpy=2.1"),
        (_segment(capability="AVX512"), "CPU capabilities", "AVX512 (b)"),
        (_segment(numeric_env={"MKL_CBWR": "AVX2"}), "CPU models", "MKL_CBWR=AVX2 (b)"),
        (
            _segment(cpu_id={"vendor": "GenuineIntel", "family": "6", "model": "143"}),
            "CPU models",
            "GenuineIntel family 6 model 143 (b)",
        ),
    ],
)
def test_runs_that_differ_are_named_with_the_field(other, field, shown):
    summary = summarize_provenance([_run("a", _segment()), _run("b", other)])
    problem = summary.strict_problem()
    assert f"the runs differ in {field}" in problem and shown in problem
    assert "\n" not in problem
    assert any(field in w for w in summary.warnings())


def test_a_resume_on_another_commit_counts_within_one_run():
    run = _run("a", _segment(), _segment(commit="c" * 40, start=500))
    summary = summarize_provenance([run])
    assert summary.differing == ["commit"]
    assert summary.values["commit"] == {"a" * 12: ["a"], "c" * 12: ["a"]}


def test_dirty_threaded_and_unknown_runs_are_refused_by_strict_only():
    runs = [
        _run("clean", _segment()),
        _run("dirty", _segment(dirty=True)),
        _run("threads", _segment(threads=0)),  # 0: torch's default, 4 threads here
        _run("old"),  # run.json without segments
        _run("resumed-by-old", _segment(start=300)),  # earlier segments unknown
        _run("old-threads", torch_threads=2),
    ]
    summary = summarize_provenance(runs)
    assert summary.dirty == ["dirty"]
    assert summary.threaded == ["threads", "old-threads"]
    assert summary.unknown == ["old", "resumed-by-old", "old-threads"]
    assert "unknown provenance (older run.json): 3 run(s)" in summary.lines()
    problem = summary.strict_problem()
    assert "uncommitted tree: dirty" in problem
    assert "learner threads > 1 (not bit-reproducible): threads, old-threads" in problem
    assert "unknown provenance (older run.json): old, resumed-by-old, old-threads" in problem
    assert summarize_provenance([_run("old")]).warnings() == []  # unknown alone: no warning


def test_cuda_facts_only_for_a_cuda_device(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"Fake GPU {device}")
    assert torch_facts("cpu")["cuda_device"] is None  # a CPU run never touches CUDA
    assert torch_facts("cuda:1")["cuda_device"] == "Fake GPU cuda:1"
    version = tmp_path / "version"
    version.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar 5 22:23:56 UTC 2024\n"
    )
    assert nvidia_driver(version) == "550.54.15"
    assert nvidia_driver(tmp_path / "missing") is None


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse4_2 avx fma avx2 avx512f avx512_vnni

processor\t: 1
vendor_id\t: SomethingElse
cpu family\t: 1
"""


def test_cpu_identity_reads_the_first_processor(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert cpu_identity(cpuinfo) == {
        "vendor": "AuthenticAMD", "family": "26", "model": "2", "stepping": "1",
        "isa": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"],
    }  # fmt: skip
    assert cpu_identity(tmp_path / "missing") is None


def test_numeric_environment_keeps_only_kernel_and_thread_settings():
    environ = {"MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1", "HOME": "/root", "PATH": "/bin"}
    assert numeric_environment(environ) == {"MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1"}


def test_thread_variables_alone_do_not_make_runs_differ():
    """Ray workers get OMP_NUM_THREADS=1 where `sphere train` does not; the learner's threads are
    compared through torch_threads, so this alone is no reason to refuse pooling."""
    ray_worker = _segment(numeric_env={"OMP_NUM_THREADS": "1"})
    summary = summarize_provenance([_run("a", _segment()), _run("b", ray_worker)])
    assert summary.differing == []
