"""``sphere envs``: list the benchmarks (task sequences) and the task names they are built from."""

from __future__ import annotations

import typer

from sphere_rl.cli.output import make_console, name_table


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

    console = make_console()
    benchmarks = name_table("Benchmarks", "name", ["tasks", "task sequence, in training order"])
    for name, sequence in list_benchmarks().items():
        benchmarks.add_row(name, str(len(sequence)), ", ".join(sequence))
    console.print(benchmarks)

    tasks = name_table(
        f"Tasks ({len(names)})", "task", ["family", "obs", "act", "steps", "success", "envpool"]
    )
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
