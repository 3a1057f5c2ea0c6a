"""A plug-in run records its plug-ins (run.json ``"plugins"``); eval, entk and train --resume load
them from there without --plugin, and say what changed when a file moved or was edited."""

import hashlib
import json
import sys

from cli_helpers import TINY_RUN, invoke

from sphere_rl import methods

PLUGIN = "import sphere_rl\nsphere_rl.register_method('ux_recorded', 'ds_moe', 'cbp')\n"


def _forget_plugin(monkeypatch, original: dict) -> None:
    """This process as a fresh one: the plug-in neither imported nor registered."""
    monkeypatch.setattr(methods, "METHODS", dict(original))
    sys.modules.pop("ux_recorded_plugin", None)


def test_a_plugin_run_is_evaluated_and_resumed_without_plugin(tmp_path, monkeypatch):
    original = dict(methods.METHODS)
    _forget_plugin(monkeypatch, original)
    plugin = tmp_path / "plugins" / "ux_recorded_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, "method": "ux_recorded", "steps_per_task": 100}))
    trained = invoke("train", "--plugin", str(plugin), "--config", str(config), "--out",
                      str(tmp_path / "runs"), "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = json.loads((run_dir / "run.json").read_text())["plugins"]
    digest = hashlib.sha256(plugin.read_bytes()).hexdigest()
    assert recorded == [{"module": "ux_recorded_plugin", "file": str(plugin.resolve()),
                         "root": str(plugin.parent.resolve()), "sha256": digest}]  # fmt: skip

    _forget_plugin(monkeypatch, original)
    evaluated = invoke("eval", str(run_dir), "--episodes", "1", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    _forget_plugin(monkeypatch, original)
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "interrupted"}))
    resumed = invoke("train", "--resume", str(run_dir), "--quiet")
    assert resumed.exit_code == 0 and "finished:" in resumed.text, resumed.output

    _forget_plugin(monkeypatch, original)
    plugin.write_text(PLUGIN + "# edited\n")
    edited = invoke("eval", str(run_dir), "--episodes", "1")
    assert edited.exit_code == 2 and edited.output.count("\n") == 1
    assert f"plug-in 'ux_recorded_plugin' from {plugin.resolve()}, which has changed" in edited.text
    plugin.rename(tmp_path / "moved.py")
    moved = invoke("entk", str(run_dir))
    assert moved.exit_code == 2 and "which no longer exists; pass --plugin" in moved.text
    # --plugin overrides the record.
    _forget_plugin(monkeypatch, original)
    given = invoke("eval", str(run_dir), "--episodes", "1", "--plugin", str(tmp_path / "moved.py"))
    assert given.exit_code == 0, given.output
    sys.modules.pop("moved", None)
