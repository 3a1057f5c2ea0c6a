"""Experiment trackers beside TensorBoard: ``sphere train --track wandb|mlflow``.

A tracker receives what TensorBoard receives (the resolved configuration, then every scalar of
``metrics.jsonl`` under its TensorBoard tag, with ``global_step`` as the step) and, when a run
finishes, its summary files (config.json, run.json, status.json, eval.csv) and its figures, drawn
into ``<run_dir>/figures/`` (:mod:`sphere_rl.analysis.run_figures`). The tracker packages
are optional extras, imported only when chosen. Tracking is not part of a run's configuration:
``--track`` leaves the config hash, and so the run directory's name, unchanged.

Both work without a network by default:

* ``wandb``: offline unless ``WANDB_MODE`` says otherwise or an API key is found
  (``WANDB_API_KEY``, or the netrc entry ``wandb login`` writes); the run is written under
  ``<run_dir>/wandb/`` and ``wandb sync`` uploads it later. ``WANDB_PROJECT`` names the project
  (default ``sphere-rl``).
* ``mlflow``: a file store in ``<run_dir>/mlruns`` unless ``MLFLOW_TRACKING_URI`` names another
  store; ``MLFLOW_EXPERIMENT_NAME`` names the experiment (default ``sphere-rl``).

The tracker's run id is kept in ``<run_dir>/tracking.json``, so a resumed run continues the same
W&B or MLflow run.
"""

from __future__ import annotations

import importlib
import json
import netrc
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from sphere_rl.continual.rundir import RunFileError, atomic_write_json, read_json

TRACKERS = ("wandb", "mlflow")
TRACKING_FILE = "tracking.json"
DEFAULT_PROJECT = "sphere-rl"
# What each tracker imports, and the extra that installs it.
_MODULES = {"wandb": "wandb", "mlflow": "mlflow"}
# The files of a finished run that a tracker keeps beside its scalars.
SUMMARY_FILES = ("config.json", "run.json", "status.json", "eval.csv")
# Where figures go in a tracker: W&B keys figures/<name>, MLflow artifacts figures/<name>.png.
FIGURE_PREFIX = "figures/"
# MLflow's limits on one log_batch call.
_PARAMS_PER_BATCH, _METRICS_PER_BATCH = 100, 1000


class TrackerUnavailable(RuntimeError):
    """The chosen tracker's package is not installed (a user's mistake: one line, exit 2)."""


class Tracker(Protocol):
    """Where a run's configuration, scalars and files go besides ``tb/``."""

    # One line for the user: where the tracker's run is (and how to upload an offline one).
    description: str

    def log_config(self, config: dict[str, Any]) -> None: ...

    def log_scalars(self, scalars: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def log_figure(self, path: Path, step: int) -> None:
        """Log the image file ``path`` (a PNG) as the figure named after its stem."""
        ...

    def close(self, outcome: str) -> None:
        """``outcome``: finished, failed or interrupted."""
        ...


def check_tracker(name: str) -> None:
    """Raise :class:`TrackerUnavailable` (or ``ValueError`` for an unknown name) unless
    ``name``'s package imports; call it before a run directory is touched."""
    if name not in TRACKERS:
        raise ValueError(f"--track must be one of {', '.join(TRACKERS)}, got {name!r}")
    _import(name)


def open_tracker(name: str, run_dir: Path, config: dict[str, Any]) -> Tracker:
    """Start (or, for a resumed run, continue) ``name``'s run for ``run_dir`` and log
    ``config``."""
    check_tracker(name)
    run_dir = Path(run_dir)
    tracker: Tracker = (WandbTracker if name == "wandb" else MlflowTracker)(run_dir)
    tracker.log_config(config)
    return tracker


def log_finished_run(tracker: Tracker, run_dir: Path, step: int) -> tuple[str, ...]:
    """Give a finished run's summary files and figures to ``tracker``; ``step``: the run's last
    global step. Returns one warning line per figure that could not be drawn (the run is finished
    all the same)."""
    # matplotlib is imported here, by a tracked run only, once it has finished.
    from sphere_rl.analysis.run_figures import draw_run_figures

    for name in SUMMARY_FILES:
        if (run_dir / name).is_file():
            tracker.log_artifact(run_dir / name)
    figures = draw_run_figures(run_dir)
    for path in figures.written:
        tracker.log_figure(path, step)
    return figures.problems


def _import(name: str) -> Any:
    module = _MODULES[name]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise TrackerUnavailable(
            f"--track {name} needs the {module} package, which is not installed ({err});"
            f" install it with: pip install 'sphere-rl[{name}]'"
        ) from None


def _saved_ids(run_dir: Path) -> dict[str, Any]:
    """tracking.json's entries (``{}`` if missing or unreadable: a new tracker run is started)."""
    path = run_dir / TRACKING_FILE
    try:
        saved = read_json(path) if path.exists() else {}
    except RunFileError:
        return {}
    return saved if isinstance(saved, dict) else {}


def _save_id(run_dir: Path, name: str, entry: dict[str, Any]) -> None:
    atomic_write_json(run_dir / TRACKING_FILE, {**_saved_ids(run_dir), name: entry})


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; else online where an API key is found, offline otherwise (so that a
    machine without a W&B login never waits on the network)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        found = netrc.netrc().authenticators(host or "api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        found = None
    return "online" if found else "offline"


class WandbTracker:
    """A W&B run written under ``<run_dir>/wandb/``, its id kept for resumes."""

    def __init__(self, run_dir: Path) -> None:
        wandb = _import("wandb")
        self.run_dir = run_dir
        run_id = _saved_ids(run_dir).get("wandb", {}).get("id") or secrets.token_hex(6)
        # console="off": wandb must not wrap stdout, which the progress display owns.
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            mode=wandb_mode(),
            settings=settings,
        )
        _save_id(run_dir, "wandb", {"id": run_id})
        where = self.run.settings.sync_dir
        self.description = f"wandb run {run_id} ({self.run.settings.mode}) in {where}"
        if self.run.settings.mode == "offline":
            self.description += f"; upload it with: wandb sync {where}"
        # Steps are env steps: a resume re-logs steps after its checkpoint, which wandb's own
        # (strictly increasing) step would drop.
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")

    def log_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)  # a resume may change runtime keys

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        if scalars:
            self.run.log({**scalars, "global_step": step})

    def log_artifact(self, path: Path) -> None:
        # Files in the run's files/ folder are uploaded with it (also by a later wandb sync);
        # a copy keeps the file as it was when logged.
        shutil.copy2(path, Path(self.run.dir) / Path(path).name)

    def log_figure(self, path: Path, step: int) -> None:
        # wandb.Image copies the file into the run's media/, shown in the W&B UI's image panels.
        image = _import("wandb").Image(str(path))
        self.run.log({f"{FIGURE_PREFIX}{Path(path).stem}": image, "global_step": step})

    def close(self, outcome: str) -> None:
        self.run.finish(exit_code=0 if outcome == "finished" else 1)


class MlflowTracker:
    """An MLflow run, in ``<run_dir>/mlruns`` unless ``MLFLOW_TRACKING_URI`` names a store."""

    def __init__(self, run_dir: Path) -> None:
        _import("mlflow")
        from mlflow.tracking import MlflowClient

        self.run_dir = run_dir
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").absolute().as_uri()
        if urlparse(uri).scheme in ("", "file"):  # a file: URI or a plain path
            # MLflow 3 keeps its file store only on request; it is the store that needs no
            # server or database (mlflow-skinny has no SQLAlchemy).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        saved = _saved_ids(run_dir).get("mlflow", {})
        if saved.get("tracking_uri") == uri and self._exists(saved.get("run_id")):
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
            run = self.client.create_run(self._experiment_id(experiment), run_name=run_dir.name)
            self.run_id = run.info.run_id
        _save_id(run_dir, "mlflow", {"tracking_uri": uri, "run_id": self.run_id})
        self.description = f"mlflow run {self.run_id} in {uri}"

    def _exists(self, run_id: str | None) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another run of a sweep created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_config(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        # Params cannot change once logged: a resume adds only keys the run has not logged yet
        # (config.json, logged as an artifact, holds the current values).
        logged = self.client.get_run(self.run_id).data.params
        params = [
            Param(key, value if isinstance(value, str) else json.dumps(value))
            for key, value in config.items()
            if key not in logged
        ]
        for start in range(0, len(params), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + _PARAMS_PER_BATCH])
        self.client.log_dict(self.run_id, config, "config.json")

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, float(value), now, step) for tag, value in scalars.items()]
        for start in range(0, len(metrics), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def log_figure(self, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=FIGURE_PREFIX.rstrip("/"))

    def close(self, outcome: str) -> None:
        status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(outcome, "FAILED")
        self.client.set_terminated(self.run_id, status=status)
