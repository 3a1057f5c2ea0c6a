"""``--track wandb|mlflow``: tiny real runs logged with the real packages, offline, read back from
what each package wrote (also after a real ``sphere sweep`` on a local Ray); the run's figures are
drawn into its directory and logged; a figure that cannot be drawn is a warning, not a failure; a
missing package is one line and exit 2; the run's identity is the same with and without
tracking."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY_RUN, invoke

from sphere_rl.config import build_config, config_hash
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import run_dir_name
from sphere_rl.sweep.ray_runner import train_run

# The figures a tracked tiny run gets: TINY_RUN evaluates, and its SPHERE actor has the proxy rank.
FIGURES = {"success", "plasticity"}
BOOKKEEPING = {"global_step", "task_index", "iteration", "train_task_index", "eval_task_index",
               "episodes"}  # fmt: skip


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No tracking server, no W&B login, no settings from this machine's environment."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT",
                 "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc, and wandb's own settings go here


def _train(tmp_path: Path, *extra: str):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_RUN))
    out = tmp_path / "runs"
    result = invoke("train", "--config", str(config), "--out", str(out), "--quiet", *extra)
    return result, out


def _expected_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every measured number of metrics.jsonl by the tag it is tracked under, as (step, value)."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for record in read_jsonl(run_dir / "metrics.jsonl"):
        kind = record["kind"]
        for key, value in record.items():
            if key in BOOKKEEPING or isinstance(value, bool | str) or value is None:
                continue
            if kind == "eval":
                tag = (f"eval_{record['eval_kind']}/{record['eval_task_index']:02d}_"
                       f"{record['eval_task']}/{key}")  # fmt: skip
            else:
                tag = f"{kind}/{key}"
            expected.setdefault(tag, []).append((record["global_step"], float(value)))
    return expected


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """Equal step by step, NaN equal to NaN (no episode finished in a rollout)."""
    return len(a) == len(b) and all(
        sa == sb and (va == pytest.approx(vb) or (math.isnan(va) and math.isnan(vb)))
        for (sa, va), (sb, vb) in zip(a, b, strict=True)
    )


def _drawn(run_dir: Path) -> dict[str, bytes]:
    """The run's figures (``<run_dir>/figures/<name>.png``) by name."""
    return {p.stem: p.read_bytes() for p in (run_dir / "figures").glob("*")}


def _mlflow_figures(client, run_id: str) -> dict[str, bytes]:
    """The figures logged as artifacts of the MLflow run, downloaded through the client."""
    import mlflow.artifacts

    paths = [a.path for a in client.list_artifacts(run_id, "figures")]
    uri = client.get_run(run_id).info.artifact_uri
    return {
        Path(p).stem: Path(mlflow.artifacts.download_artifacts(f"{uri}/{p}")).read_bytes()
        for p in paths
    }


def _mlflow(run_dir: Path):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
    assert tracking["tracking_uri"] == (run_dir / "mlruns").absolute().as_uri()
    return MlflowClient(tracking["tracking_uri"]), tracking["run_id"]


def test_mlflow_logs_config_every_scalar_and_the_summary(tmp_path, offline):
    result, out = _train(tmp_path, "--track", "mlflow")
    assert result.exit_code == 0, result.output
    # --track is no part of the run's identity: the directory is the one an untracked run gets.
    (run_dir,) = out.iterdir()
    assert run_dir.name == run_dir_name(build_config(TINY_RUN))
    config = json.loads((run_dir / "config.json").read_text())
    assert "track" not in config
    _, run_id = _mlflow(run_dir)
    assert f"tracked: mlflow run {run_id} in file:" in result.text
    _check_mlflow_run(run_dir)


def _check_mlflow_run(run_dir: Path) -> None:
    """The MLflow run of ``run_dir``, read back with MLflow's client, holds the run's config as
    params, every scalar of metrics.jsonl as a metric history, its summary files and figures."""
    client, run_id = _mlflow(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert client.get_experiment(run.info.experiment_id).name == "sphere-rl"
    assert run.data.params == {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()
    }
    expected = _expected_scalars(run_dir)
    assert {"train/sps", "eval_task_end/00_reach-v3/success"} <= set(expected)
    assert any(tag.startswith("diag/") for tag in expected)
    assert set(expected) <= set(run.data.metrics)
    for tag, values in expected.items():
        history = [(m.step, m.value) for m in client.get_metric_history(run_id, tag)]
        assert _same(sorted(history), sorted(values)), tag
    assert "eval/average_success" in run.data.metrics  # TensorBoard's derived metric too
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "run.json", "status.json", "eval.csv"} <= artifacts
    figures = _drawn(run_dir)
    assert set(figures) == FIGURES
    assert all(png.startswith(b"\x89PNG") for png in figures.values())
    assert _mlflow_figures(client, run_id) == figures


@pytest.mark.slow
def test_sweep_tracks_every_run_through_ray(tmp_path, offline):
    """A real ``sphere sweep --track mlflow`` of two tiny runs on a local Ray instance: each
    worker logs its run into the run's own MLflow file store."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({k: v for k, v in TINY_RUN.items() if k != "method"}))
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "sphere_rl.cli.app", "sweep", "--config", str(config),
               "--out", str(out), "--num-cpus", "2", "--methods", "sphere", "--seeds", "0-1",
               "--protocols", "crl", "--track", "mlflow"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_dirs = sorted(p.parent for p in out.glob("*/config.json"))
    assert [json.loads((d / "config.json").read_text())["seed"] for d in run_dirs] == [0, 1]
    for run_dir in run_dirs:
        assert "warning:" not in (run_dir / "sweep.log").read_text()
        _check_mlflow_run(run_dir)


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_the_run_finishes(
    tmp_path, offline, monkeypatch
):
    from sphere_rl.analysis import plots

    def broken(*args, **kwargs):
        plots.plt.figure()  # left half-drawn: must be closed
        raise RuntimeError("no plasticity\ntoday")

    monkeypatch.setattr(plots, "draw_plasticity", broken)
    before = plots.plt.get_fignums()
    result, out = _train(tmp_path, "--track", "mlflow")
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: figure plasticity of {run_dir} was not drawn"
                        " (RuntimeError: no plasticity today)"]  # fmt: skip
    assert plots.plt.get_fignums() == before
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    client, run_id = _mlflow(run_dir)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert set(_drawn(run_dir)) == {"success"}
    assert _mlflow_figures(client, run_id) == _drawn(run_dir)


def test_a_resumed_run_continues_its_mlflow_run(interrupted_run, offline):
    def resume() -> str:
        result = invoke("train", "--resume", str(interrupted_run), "--quiet", "--track", "mlflow")
        assert result.exit_code == 0, result.output
        return _mlflow(interrupted_run)[1]

    first = resume()
    status = json.loads((interrupted_run / "status.json").read_text())
    (interrupted_run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    assert resume() == first
    client, run_id = _mlflow(interrupted_run)
    experiment = client.get_run(run_id).info.experiment_id
    assert len(client.search_runs([experiment])) == 1
    assert client.get_run(run_id).info.status == "FINISHED"


def _wandb_records(path: Path):
    """The records of a ``.wandb`` file: a W&B header, then LevelDB-log blocks of protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def _key(item) -> str:
    """An item's key: wandb-core writes it as ``key`` or as a one-part ``nested_key``."""
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_logs_config_every_scalar_and_the_summary(tmp_path, offline):
    result, out = _train(tmp_path, "--track", "wandb")
    assert result.exit_code == 0, result.output
    assert "wandb:" not in result.output  # wandb's own chatter stays off the terminal
    assert "(offline)" in result.text and "upload it with: wandb sync" in result.text
    (run_dir,) = out.iterdir()
    assert run_dir.name == run_dir_name(build_config(TINY_RUN))
    run_id = json.loads((run_dir / "tracking.json").read_text())["wandb"]["id"]
    (offline_dir,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id}")  # offline: no login

    config, history, images, project, exit_code = {}, {}, {}, None, None
    for record in _wandb_records(offline_dir / f"run-{run_id}.wandb"):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            project = record.run.project
            config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            for tag, value in row.items():
                if tag.startswith("figures/"):  # an image: figures/<name>/<field>, flattened
                    _, name, field = tag.split("/")
                    images.setdefault(name, {})[field] = (row["global_step"], value)
                else:
                    history.setdefault(tag, []).append((row["global_step"], float(value)))
        elif kind == "exit":
            exit_code = record.exit.exit_code
    assert project == "sphere-rl"
    assert exit_code == 0
    config.pop("_wandb", None)
    assert config == json.loads((run_dir / "config.json").read_text())
    for tag, values in _expected_scalars(run_dir).items():
        assert _same(history.get(tag, []), values), tag
    files = {p.name for p in (offline_dir / "files").iterdir()}
    assert {"config.json", "run.json", "status.json", "eval.csv"} <= files
    figures = _drawn(run_dir)
    assert set(figures) == set(images) == FIGURES
    last_step = json.loads((run_dir / "status.json").read_text())["global_step"]
    for name, image in images.items():
        assert image["_type"] == (last_step, "image-file")
        _, path = image["path"]
        assert (offline_dir / "files" / path).read_bytes() == figures[name], name


def test_sweep_worker_tracks_its_run(tmp_path, offline):
    """The body of a sweep's Ray task, called directly, logs where ``sphere train`` would."""
    cfg = build_config(TINY_RUN)
    run_dir = tmp_path / run_dir_name(cfg)
    run_dir.mkdir()
    outcome = train_run(cfg.to_dict(), str(run_dir), 1, (), "mlflow")
    assert outcome["result"] == "finished", outcome
    client, run_id = _mlflow(run_dir)
    assert client.get_run(run_id).data.metrics["train/sps"] > 0


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_missing_package_is_one_line_naming_the_extra(tmp_path, command, tracker):
    """In a fresh interpreter where the package cannot be imported: exit 2, no traceback,
    nothing created."""
    out = tmp_path / "runs"
    args = ["train"] if command == "train" else ["sweep", "--methods", "ppo"]
    args += ["--tasks", "reach-v3"]
    code = (
        f"import sys; sys.modules[{tracker!r}] = None\n"  # an import of it raises ImportError
        "from sphere_rl.cli.app import main\n"
        f"sys.argv = ['sphere', *{args!r}, '--out', {str(out)!r}, '--track', {tracker!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "300"})  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"pip install 'sphere-rl[{tracker}]'" in lines[0]
    assert not out.exists()


def test_unknown_tracker_is_refused(tmp_path):
    result, out = _train(tmp_path, "--track", "tensorboard")
    assert result.exit_code == 2
    assert "--track must be one of wandb, mlflow, got 'tensorboard'" in result.text
    assert not out.exists()


def test_dry_run_names_the_same_directory_with_and_without_track(tmp_path, offline):
    plain, _ = _train(tmp_path, "--dry-run")
    tracked, _ = _train(tmp_path, "--dry-run", "--track", "mlflow")
    assert plain.exit_code == tracked.exit_code == 0
    assert plain.output == tracked.output
    name = run_dir_name(build_config(TINY_RUN))
    assert name in plain.text and config_hash(build_config(TINY_RUN).to_dict()) in name


def test_untracked_runs_draw_no_figures_and_import_no_matplotlib(finished_run):
    """Figures are the trackers' business: an untracked run gets none, and training without a
    tracker never imports matplotlib (it is imported once a tracked run has finished)."""
    assert not (finished_run / "figures").exists()
    code = ("import sys, sphere_rl.cli.app, sphere_rl.continual.runner, sphere_rl.sweep.ray_runner\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
