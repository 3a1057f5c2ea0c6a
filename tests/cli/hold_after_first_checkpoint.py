"""Test plug-in (``--plugin``): the training process stops right after its first ``latest.pt`` and
holds the run (and its lock) until the test says so.

It makes the two-process test independent of the machine's speed: the first process cannot finish
its run before the second one has tried to resume it. After writing its first checkpoint it
creates ``held`` next to this file, then waits for ``release`` there (at most 10 minutes, so that
a failing test cannot leave it running for ever).
"""

import time
from pathlib import Path

import sphere_rl.continual.runner as runner

HELD, RELEASE = Path(__file__).with_name("held"), Path(__file__).with_name("release")
_save = runner.save_checkpoint


def _save_then_hold_once(path, payload) -> None:
    _save(path, payload)
    if Path(path).name != "latest.pt" or HELD.exists():
        return
    HELD.write_text(str(Path(path).parent.parent))
    deadline = time.monotonic() + 600
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


runner.save_checkpoint = _save_then_hold_once
