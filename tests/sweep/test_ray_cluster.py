"""``sphere sweep --address`` against a real two-node Ray cluster, both nodes on this host.

Both nodes are started with ``ray start`` (as on two machines, with their own ports), the sweep
joins as a driver, one node is killed mid-sweep, and the sweep is run again. The test starts and
stops everything itself; it never runs ``ray stop``, which would also stop other users' Ray
instances on the machine, but kills exactly the processes its nodes started.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sweep_setup import ONE_TASK

from sphere_rl.continual.rundir import read_json

RAY = str(Path(sys.executable).parent / "ray")
# Ray 2.60 clusters use token authentication; every process that joins must say so.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "RAY_AUTH_MODE": "token"}
NODE_RE = re.compile(r"sweep: on node (\w+)")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_node(temp_dir: str, ports: list[int], head: str | int) -> subprocess.Popen:
    """``ray start --block`` in its own session (killing its group kills the node), with its own
    ports so that two nodes share one host. ``head``: the head's port to start a head, else the
    address to join.

    Ray picks the host's address for every node; forcing 127.0.0.1 makes a second node's dashboard
    agent look for its raylet at the host address, and the node never comes up.
    """
    node_manager, object_manager, agent, agent_grpc, env_agent, metrics = ports
    where = ["--head", f"--port={head}", "--include-dashboard=false"] if isinstance(head, int) else [
        f"--address={head}"]  # fmt: skip
    return subprocess.Popen(
        [RAY, "start", "--block", *where, "--num-cpus=1",
         f"--temp-dir={temp_dir}", f"--node-manager-port={node_manager}",
         f"--object-manager-port={object_manager}", f"--dashboard-agent-listen-port={agent}",
         f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
         f"--metrics-export-port={metrics}", "--disable-usage-stats"],
        env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _start_node_until_up(temp_dir: str, ports: list[int], head: str | int) -> subprocess.Popen:
    """Start a node; if its raylet aborts during start-up, start it again.

    A raylet waits only ~15 s for its node's dashboard agent and then aborts, while `ray start
    --block` keeps running; on a loaded machine that happens. A raylet alive 30 s is past it.
    """
    for _ in range(5):
        node, since = _start_node(temp_dir, ports, head), None
        started = time.time()
        while time.time() - started < 300 and node.poll() is None:
            time.sleep(2)
            if _raylet_running(temp_dir):
                since = since or time.time()
                if time.time() - since > 30:
                    return node
            elif since is not None:
                break  # the raylet gave up
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        _kill_processes_using(temp_dir)
    raise AssertionError(f"the node in {temp_dir} never came up")


def _alive_nodes(address: str) -> dict[int, str]:
    """``{node manager port: node id}`` of the cluster's live nodes, asked as a driver would."""
    probe = (f"import json, ray; ray.init(address={address!r}, logging_level='ERROR');"
             "print('NODES=' + json.dumps({n['NodeManagerPort']: n['NodeID'] for n in ray.nodes()"
             " if n['Alive']}))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    found = re.findall(r"^NODES=(.*)$", result.stdout, re.MULTILINE)
    return {int(k): v for k, v in json.loads(found[-1]).items()} if found else {}


def _processes_using(marker: str, also: bytes = b"") -> list[int]:
    """PIDs whose command line mentions ``marker`` (our nodes' temp dir: theirs, never others')
    and ``also``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if marker.encode() in text and also in text:
            pids.append(int(cmdline.parent.name))
    return [p for p in pids if p != os.getpid()]


def _raylet_running(temp_dir: str) -> bool:
    return bool(_processes_using(temp_dir, also=b"raylet/raylet"))


def _kill_processes_using(temp_dir: str) -> None:
    for pid in _processes_using(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop(nodes: list[subprocess.Popen], temp_dirs: list[str]) -> None:
    for node in nodes:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)  # `ray start --block` stops its node's processes
    for node in nodes:
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and any(_processes_using(d) for d in temp_dirs):
        time.sleep(1)
    for temp_dir in temp_dirs:  # whatever outlived its node (workers have their own groups)
        _kill_processes_using(temp_dir)
    time.sleep(1)
    for temp_dir in temp_dirs:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _states(out: Path) -> dict[str, str]:
    return {p.parent.name: read_json(p)["state"] for p in out.glob("*/status.json")}


def _nodes_of(run: Path) -> list[str]:
    log = run / "sweep.log"
    return NODE_RE.findall(log.read_text()) if log.exists() else []


@pytest.mark.slow
@pytest.mark.cluster
def test_sweep_on_a_two_node_cluster_survives_losing_a_node(tmp_path, config_file):
    cfg_file, out = config_file({**ONE_TASK, "steps_per_task": 400}), tmp_path / "runs"
    # Short paths: Ray's Unix sockets live under the temp dir (108-byte limit).
    head_tmp, node_tmp = tempfile.mkdtemp(prefix="rh", dir="/tmp"), tempfile.mkdtemp(
        prefix="rn", dir="/tmp")  # fmt: skip
    head_port, *ports = _free_ports(13)
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(_start_node_until_up(head_tmp, ports[:6], head_port))
        deadline = time.time() + 600
        # The head writes its address there.
        address = (Path(head_tmp) / "ray_current_cluster").read_text().strip()
        assert address.endswith(f":{head_port}")
        nodes.append(_start_node_until_up(node_tmp, ports[6:12], address))  # one at a time
        alive: dict[int, str] = {}
        while time.time() < deadline and len(alive) < 2:
            alive = _alive_nodes(address)
        assert set(alive) == {ports[0], ports[6]}, f"the cluster did not come up: {alive}"
        head_id, second_id = alive[ports[0]], alive[ports[6]]

        sweep = [sys.executable, "-m", "sphere_rl.cli.app", "sweep", "--config", str(cfg_file),
                 "--out", str(out), "--address", address, "--methods", "ppo,sphere",
                 "--seeds", "0-1", "--protocols", "crl"]  # fmt: skip
        driver = subprocess.Popen(sweep, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)  # fmt: skip
        finished_before: dict[str, bytes] = {}
        while time.time() < deadline + 600 and driver.poll() is None:
            states = _states(out)
            victims = [n for n, s in states.items() if s == "running"
                       and second_id in _nodes_of(out / n)
                       and (out / n / "checkpoints/latest.pt").exists()]  # fmt: skip
            if "finished" in states.values() and victims:
                finished_before = {n: (out / n / "metrics.jsonl").read_bytes()
                                   for n, s in states.items() if s == "finished"}  # fmt: skip
                os.killpg(nodes[1].pid, signal.SIGKILL)  # the second node dies, with its raylet
                break
            time.sleep(0.2)
        first_output = driver.communicate(timeout=900)[0]
        assert finished_before, "no run was mid-way on the second node:\n" + first_output

        # Nothing finished was lost; running the sweep again completes every run.
        again = subprocess.run(sweep, env=ENV, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, first_output + again.stdout + again.stderr
        assert set(_states(out).values()) == {"finished"} and len(_states(out)) == 4
        for name, metrics in finished_before.items():
            assert (out / name / "metrics.jsonl").read_bytes() == metrics
        summary = json.loads((out / "sweep_summary.json").read_text())
        assert {o["result"] for o in summary} <= {"finished", "skipped"}
        # Runs were scheduled on both nodes (each run's log names the node that trained it).
        used = {node for run in out.iterdir() if run.is_dir() for node in _nodes_of(run)}
        assert {head_id, second_id} <= used
        for run in out.iterdir():  # every record once: no run was trained twice at once
            if run.is_dir():
                steps = [json.loads(line)["global_step"] for line in
                         (run / "metrics.jsonl").read_text().splitlines()
                         if json.loads(line)["kind"] == "train"]  # fmt: skip
                assert steps == sorted(set(steps)), run.name
    finally:
        _stop(nodes, [head_tmp, node_tmp])
    assert not _processes_using(head_tmp) and not _processes_using(node_tmp)
