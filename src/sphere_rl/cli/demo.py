"""``sphere demo``: the main job on the embedded default."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo() -> None:
    """Run the main job on the embedded default (placeholder until the runner lands)."""
    typer.echo("sphere-rl demo")
