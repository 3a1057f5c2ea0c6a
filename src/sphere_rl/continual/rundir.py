"""Crash-safe files of a run directory.

Every whole-file write goes to a temporary file in the same directory, is fsync'ed, then renamed
over the target (``os.replace`` is atomic on POSIX), so a kill leaves either the old or the new
file. The metrics log is append-only JSON lines, flushed and fsync'ed per record; a kill can at
worst leave a partial last line, which readers skip and :meth:`JsonlLog.truncate_after` removes
when a run resumes.

Layout of a run directory::

    config.json          resolved configuration (what --resume compares against)
    run.json             resolved task sequence, method parts, package version, config_hash,
                         segments (provenance of each training session)
    status.json          state (running / finished / failed), position, error message
    metrics.jsonl        one record per log step: kind "train", "eval" or "diag"
    eval.csv             every evaluation (regenerated from metrics.jsonl)
    error.log            the traceback of every crash (a bug, not a user's mistake)
    .lock                held (``flock``) by the process training the run; holds its PID
    entk.json            ``sphere entk`` results (read-merge-written under ``.entk.json.lock``)
    tb/                  TensorBoard events
    tracking.json        ``--track``: the W&B / MLflow run ids (continued on resume); wandb/, mlruns/
    figures/             ``--track``, once finished: the run's figures (success.png, plasticity.png)
    checkpoints/latest.pt, checkpoints/task_XXX_end.pt
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

EVAL_COLUMNS = (
    "global_step",
    "kind",
    "train_task_index",
    "train_task",
    "eval_task_index",
    "eval_task",
    "success",
    "return",
    "episodes",
)


# Errors of where files go, not of the code: a full disk or quota (the machine's side) and a
# read-only, unwritable or too long path (the user's). A run stopped by one is interrupted, not
# failed: the same command continues it once the cause is gone.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
UNWRITABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG})


def is_storage_error(err: BaseException) -> bool:
    """Whether ``err`` is a full disk or an unwritable path rather than a bug."""
    return isinstance(err, OSError) and err.errno in FULL_DISK_ERRNOS | UNWRITABLE_ERRNOS


LOCK_NAME = ".lock"
ERROR_LOG = "error.log"
_TMP_SUFFIX = ".tmp"


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by what ``write`` writes into the open file it is given, all or nothing:
    ``write`` fills a temporary file beside ``path`` that is synced and renamed over it, so a
    kill at any moment leaves the old file or the new one. Streaming large contents this way
    (a checkpoint) needs no copy of them in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        # mkstemp creates 0600; a run directory on shared storage must keep the user's usual mode.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files of atomic writes a kill interrupted (``.<name>.*.tmp`` in the
    run directory and its ``checkpoints/``); returns what was removed. Only call it while holding
    the run's lock, or a live writer's file could go. The temporary of a file shared with other
    commands (:func:`update_json`, e.g. ``sphere entk``'s) is removed only while its file lock is
    free, and under it: its writer does not hold the run's lock."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        for tmp in folder.glob(f".*{_TMP_SUFFIX}"):
            target = folder / tmp.name[1 : -len(_TMP_SUFFIX)].rsplit(".", 1)[0]
            with file_lock(target, blocking=False) as free:
                if free and tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
    return removed


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Exclusive ``flock`` on ``.<name>.lock`` beside ``path``, for the read-merge-write of a file
    that several commands update (the run's own ``.lock`` is held for a whole training run, so
    these must not wait for it). Yields whether the lock is held: always when ``blocking``;
    ``False`` without waiting when another process holds it. No lock file is created for a
    non-blocking probe (a file nobody ever locked has no writer to protect)."""
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    if not blocking and not lock.exists():
        yield True
        return
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True  # closing the handle releases the lock


def update_json(path: Path, update: Callable[[Any], Any], default: Any = None) -> Any:
    """Read ``path`` (``default`` if absent), apply ``update`` and write the result atomically,
    all under :func:`file_lock`, so that concurrent updaters never drop each other's changes.
    Returns what was written.

    Raises:
        RunFileError: if the existing file is not valid JSON.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        new = update(read_json(path) if path.is_file() else default)
        atomic_write_json(path, new)
    return new


class RunBusyError(RuntimeError):
    """Another live process is training this run directory right now."""


@contextlib.contextmanager
def run_lock(run_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Exclusive lock on a run directory for as long as one process trains it.

    ``flock`` is released by the kernel when its holder dies, so a killed run leaves no stale
    lock: the PID left in the file is only for the message of the process that finds it busy.

    Args:
        wait_s: how long to wait for a holder to let go before giving up.

    Raises:
        RunBusyError: naming the holder's PID, if another process holds the lock.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    deadline = time.monotonic() + wait_s
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunBusyError(
                f"{run_dir} is being trained by another process (PID {holder}); wait for it to"
                " finish or stop it, then run the command again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def append_error_log(run_dir: Path, text: str) -> None:
    """Append a crash's traceback to the run's ``error.log`` (best effort: never masks the crash)."""
    with contextlib.suppress(OSError), open(Path(run_dir) / ERROR_LOG, "a") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class RunFileError(ValueError):
    """A file of a run directory is missing, truncated or not what it should be."""


def read_json(path: Path) -> Any:
    """The JSON in ``path``.

    Raises:
        RunFileError: naming the file, if it cannot be read or is not valid JSON.
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise RunFileError(f"{path}: cannot read it as JSON ({reason})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (from a kill mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class JsonlLog:
    """Append-only JSON-lines log with per-record fsync."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)  # created by the first append, not before

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, global_step: int) -> list[dict[str, Any]]:
        """Drop records logged after ``global_step`` (work a resumed run will redo); returns the
        records kept."""
        records = read_jsonl(self.path)
        kept = [r for r in records if r.get("global_step", 0) <= global_step]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        if not self.path.exists() or self.path.read_text() != text:  # never rewrite an intact file
            atomic_write_bytes(self.path, text.encode())
        return kept


def write_eval_csv(path: Path, eval_records: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EVAL_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in eval_records:
        writer.writerow(record)
    data = buffer.getvalue().encode()
    if not Path(path).is_file() or Path(path).read_bytes() != data:  # leave an intact file alone
        atomic_write_bytes(path, data)
