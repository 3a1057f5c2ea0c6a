"""Where and with what a run was trained: code state, packages, CPU and thread facts, host.

:func:`collect_provenance` returns a JSON-ready dict; the runner stores one per training segment
in ``run.json`` (docs/reliability.md, "Provenance"), so that two sessions' numbers can be traced
back to the commit, packages and machine that produced them. Nothing here ever fails a run: a
fact that cannot be found is ``None`` (or ``"not a git checkout"`` for the code state).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import sphere_rl

# Packages whose versions change what a run computes (simulators, numerics).
PACKAGES = ("torch", "numpy", "mujoco", "metaworld", "envpool", "gymnasium")
# Environment variables that change which kernels compute a run's floats. MKL picks its code path
# from the CPU it runs on (vendor, family, model) unless MKL_CBWR pins one, and the paths round
# differently: on one machine, MKL_CBWR=AVX2, =COMPATIBLE and the default each change a cw10 run's
# first diagnostic (docs/results.md, "Regenerating a study on another machine").
NUMERIC_ENV_PREFIXES = ("MKL_", "KMP_", "OMP_", "ATEN_", "DNNL_", "ONEDNN_", "OPENBLAS_")
# Those of them that pick a code path (thread counts are compared through torch_threads instead).
CODE_PATH_ENV = (
    "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "ATEN_CPU_CAPABILITY",
    "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
)  # fmt: skip
# CPU features that decide the SIMD kernels torch, MKL and oneDNN dispatch to.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
NOT_GIT = "not a git checkout"
_GIT_TIMEOUT_S = 10


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (``2026-12-05T19:04:59+00:00``)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _git(root: Path, *args: str) -> bytes | None:
    """``git -C root args`` stdout, or None if git is missing, fails or hangs."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(path: Path) -> dict[str, Any] | str:
    """The code state of the git checkout holding ``path``.

    Returns:
        ``{"commit": sha, "dirty": bool, "diff_sha256": hex or None}`` (the hash covers
        ``git diff HEAD`` and the names of untracked, non-ignored files; None when clean), or
        :data:`NOT_GIT` when ``path`` is not inside a git work tree or git is unavailable.
    """
    root = Path(path)
    root = root if root.is_dir() else root.parent
    commit = _git(root, "rev-parse", "HEAD")
    diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z")
    if commit is None or diff is None or untracked is None:
        return NOT_GIT
    dirty = bool(diff or untracked)
    digest = hashlib.sha256(diff + b"\0untracked\0" + untracked).hexdigest() if dirty else None
    return {"commit": commit.decode().strip(), "dirty": dirty, "diff_sha256": digest}


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (None where missing), without importing them."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _build_facts(config_text: str) -> dict[str, str]:
    """The compact facts of ``torch.__config__.show()``: BLAS, LAPACK, MKL, oneDNN, OpenMP."""
    facts = {}
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKL", "USE_MKLDNN", "USE_OPENMP"):
        match = re.search(rf"\b{key}=([^,\s]+)", config_text)
        if match:
            facts[key.lower()] = match[1]
    for key, pattern in (
        ("mkl_version", r"Math Kernel Library Version ([\w.\-]+)"),
        ("onednn_version", r"MKL-DNN v([\w.]+)"),
    ):
        match = re.search(pattern, config_text)
        if match:
            facts[key] = match[1]
    return facts


def torch_facts(device: str = "cpu") -> dict[str, Any]:
    """CPU capability, BLAS/oneDNN build facts, intra-op threads, and the CUDA device's name,
    runtime and driver where ``device`` is a CUDA one (a CPU run never initialises CUDA). torch
    is imported: every run has it loaded already."""
    import torch

    facts: dict[str, Any] = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "build": _build_facts(torch.__config__.show()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.is_available()),
        "intra_op_threads": torch.get_num_threads(),
        "cuda_device": None,
        "cuda_driver": None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
        facts["cuda_runtime"] = torch.version.cuda
        facts["cuda_driver"] = nvidia_driver()
    return facts


def nvidia_driver(version_file: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel driver's version (``"NVRM version: ... Kernel Module  550.54.15  ..."``),
    or None where there is none."""
    try:
        match = re.search(r"Kernel Module\s+([\d.]+)", version_file.read_text())
    except OSError:
        return None
    return match[1] if match else None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any] | None:
    """Vendor, family, model and stepping numbers and the SIMD features of :data:`ISA_FLAGS`
    (``/proc/cpuinfo``'s first processor), or None where there is no such file. A virtual machine's
    model name can be as vague as "AMD EPYC"; these numbers tell its generations apart."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "vendor": fields.get("vendor_id"),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }


def numeric_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The set environment variables of :data:`NUMERIC_ENV_PREFIXES` (thread counts, MKL's code
    path, torch's CPU capability override), sorted by name."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in sorted(environ.items()) if k.startswith(NUMERIC_ENV_PREFIXES)}


def collect_provenance(argv: list[str] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Everything that tells two training sessions apart, as a JSON-ready dict.

    Args:
        argv: the command line to record; ``sys.argv`` if None.
        device: the run's torch device; CUDA facts are collected for a CUDA one only.

    Returns:
        ``version``, ``git`` (see :func:`git_state`, for the checkout the imported
        ``sphere_rl`` lives in), ``python``, ``packages``, ``torch`` (see :func:`torch_facts`),
        ``host``, ``cpu`` (model name), ``cpu_id`` (:func:`cpu_identity`), ``numeric_env``
        (:func:`numeric_environment`), ``argv`` and ``start`` (UTC, ISO 8601).
    """
    return {
        "version": sphere_rl.__version__,
        "git": git_state(Path(sphere_rl.__file__).parent),
        "python": platform.python_version(),
        "packages": package_versions(),
        "torch": torch_facts(device),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_id": cpu_identity(),
        "numeric_env": numeric_environment(),
        "argv": list(sys.argv if argv is None else argv),
        "start": utc_now(),
    }


__all__ = [
    "CODE_PATH_ENV",
    "NOT_GIT",
    "PACKAGES",
    "collect_provenance",
    "cpu_identity",
    "cpu_model",
    "git_state",
    "numeric_environment",
    "nvidia_driver",
    "package_versions",
    "torch_facts",
    "utc_now",
]
