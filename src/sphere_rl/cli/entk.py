"""``sphere entk``: the eNTK effective rank of trained policies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sphere_rl.cli.common import fail, load_run_plugins_or_fail
from sphere_rl.cli.output import make_console, name_table, print_json

console = make_console()
err_console = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("entk")(entk_command)


def entk_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[
        str, typer.Option(help="latest, a file in checkpoints/, or 'all' for every task end.")
    ] = "all",
    samples: Annotated[int, typer.Option(help="States in the probe batch (N).")] = 256,
    task: Annotated[
        str | None, typer.Option(help="Probe task (default: every task of the run).")
    ] = None,
    trace_outputs: Annotated[
        bool, typer.Option("--trace-outputs", help="N×N output-traced kernel instead of NA×NA.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the results as JSON on stdout (and nothing else there)."
        ),
    ] = False,
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", metavar="MODULE", help="Import this module first (as for train)."),
    ] = None,
) -> None:
    """r_e(K) of the policy's eNTK and the SPHERE proxy r_e(A), on each task's probe batch.

    The probe batches are the ones the runner's diagnostics use (same seeds and environments), so
    with --samples equal to the run's diag_samples the numbers line up with the run's logged
    entk/effective_rank.
    """
    from sphere_rl.analysis.entk_results import save_entk_records
    from sphere_rl.continual.loading import load_agent
    from sphere_rl.continual.seeding import probe_batch
    from sphere_rl.metrics import entk_effective_rank, sphere_proxy_rank

    if samples < 1:
        err_console.print(f"[red]error:[/red] --samples must be >= 1, got {samples}")
        raise typer.Exit(2)
    load_run_plugins_or_fail(plugin, run_dir)
    ckpt_dir = run_dir / "checkpoints"
    names = (
        sorted(p.stem for p in ckpt_dir.glob("task_*_end.pt"))
        if checkpoint == "all"
        else [checkpoint]
    )
    if not names:
        err_console.print(f"[red]error:[/red] no task-end checkpoints in {ckpt_dir}")
        raise typer.Exit(2)
    rows, probes, records = [], {}, []
    for name in names:
        try:
            agent, tasks, cfg = load_agent(run_dir, name)
        except (FileNotFoundError, ValueError) as err:
            fail(str(err))
        # Training mode, as in the runner's diagnostics: the kernel that governs learning
        # (DS-MoE trains with dense routing).
        agent.actor.train()
        if task is not None and task not in tasks:
            err_console.print(f"[red]error:[/red] --task must be one of the run's tasks {tasks}")
            raise typer.Exit(2)
        for j, probe_task in enumerate(tasks):
            if task is not None and probe_task != task:
                continue
            if j not in probes:
                probes[j] = probe_batch(cfg, j, probe_task, samples)
            obs = agent.obs_tensor(probes[j])
            rank = entk_effective_rank(agent.actor, obs, trace_outputs=trace_outputs)
            proxy = sphere_proxy_rank(agent.actor, obs)
            rows.append({"checkpoint": name, "probe_task": probe_task, "entk_rank": rank,
                         "proxy_rank": proxy})  # fmt: skip
            records.append({"checkpoint": name, "probe_task_index": j, "probe_task": probe_task,
                            "samples": samples, "trace_outputs": trace_outputs,
                            "entk_rank": float(rank), "proxy_rank": float(proxy)})  # fmt: skip
    saved = save_entk_records(run_dir, records)
    if as_json:
        print_json({"run_dir": str(run_dir), "samples": samples, "saved": str(saved),
                    "trace_outputs": trace_outputs, "results": rows})  # fmt: skip
        return
    table = name_table(
        f"spectral plasticity of {run_dir} ({samples} states per probe)",
        "checkpoint",
        ["probe task", "r_e(K)", "r_e(A) proxy"],
    )
    for row in rows:
        table.add_row(row["checkpoint"], row["probe_task"], f"{row['entk_rank']:.1f}",
                      f"{row['proxy_rank']:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"saved to {saved} (sphere report draws them)")
