"""``sphere envs``: list the benchmarks (task sequences) and the task names they are built from."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    app.command("envs")(envs)


def envs(
    family: str | None = typer.Option(
        None, "--family", "-f", help="Only list tasks of this family: metaworld or h1."
    ),
) -> None:
    """List the benchmarks with their task sequences, then every task name."""
    from sphere_rl.envs import list_benchmarks, list_tasks, task_spec
    from sphere_rl.envs.envpool_backend import ENVPOOL_PARITY

    try:
        names = list_tasks(family)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--family") from exc

    console = Console(width=120)
    benchmarks = Table(title="Benchmarks", show_lines=False)
    benchmarks.add_column("name", style="bold")
    benchmarks.add_column("tasks")
    benchmarks.add_column("task sequence, in training order")
    for name, sequence in list_benchmarks().items():
        benchmarks.add_row(name, str(len(sequence)), ", ".join(sequence))
    console.print(benchmarks)

    tasks = Table(title=f"Tasks ({len(names)})")
    for column in ("task", "family", "obs", "act", "steps", "success", "envpool"):
        tasks.add_column(column)
    for name in names:
        spec = task_spec(name)
        if spec.family != "metaworld":
            envpool = "-"
        elif name not in ENVPOOL_PARITY:
            envpool = "unchecked"
        else:
            envpool = "yes" if ENVPOOL_PARITY[name] is None else "refused"
        tasks.add_row(
            name,
            spec.family,
            str(spec.obs_dim),
            str(spec.act_dim),
            str(spec.max_episode_steps),
            spec.success,
            envpool,
        )
    console.print(tasks)
