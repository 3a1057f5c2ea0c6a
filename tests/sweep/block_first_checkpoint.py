"""Test plug-in (``--plugin``): the first run of a sweep to write a checkpoint stops right after it
and waits until it is killed.

It makes the killed-sweep test deterministic: that run can never finish before the test kills the
sweep, whatever the machine's speed. The first writer of ``latest.pt`` creates ``blocked`` next to
this file (``O_EXCL``: exactly one process wins), then sleeps; once ``blocked`` exists nothing is
blocked again, so the next sweep resumes that run from its checkpoint.
"""

import os
import time
from pathlib import Path

import sphere_rl.continual.runner as runner

BLOCKED = Path(__file__).with_name("blocked")  # holds the blocked run's directory
_save = runner.save_checkpoint


def _save_then_block_once(path, payload) -> None:
    _save(path, payload)
    if Path(path).name != "latest.pt":
        return
    try:
        fd = os.open(BLOCKED, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    os.write(fd, str(Path(path).parent.parent).encode())
    os.close(fd)
    while True:  # until the sweep is killed (the worker exits with its raylet)
        time.sleep(1)


runner.save_checkpoint = _save_then_block_once
