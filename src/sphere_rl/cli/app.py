"""The ``sphere`` command line.

Each capability lives in its own module under :mod:`sphere_rl.cli` and registers its commands on
the shared :data:`app` from :func:`_register_all`, so this file stays a table of contents.
"""

from __future__ import annotations

import typer

from sphere_rl.cli.common import CommandGroup

app = typer.Typer(
    name="sphere",
    cls=CommandGroup,  # a full disk or an unwritable path: one line, not a traceback
    help="SPHERE: spectral plasticity for Mixture-of-Experts policies in continual RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        import sphere_rl

        typer.echo(f"sphere-rl {sphere_rl.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """SPHERE: spectral plasticity for Mixture-of-Experts policies in continual RL."""


def _register_all() -> None:
    from sphere_rl.cli import (
        demo,
        entk,
        envs,
        export,
        mechanism,
        methods,
        power,
        report,
        sweep,
        train,
    )

    demo.register(app)
    entk.register(app)
    envs.register(app)
    export.register(app)
    mechanism.register(app)
    methods.register(app)
    power.register(app)
    report.register(app)
    sweep.register(app)
    train.register(app)


def main() -> None:
    _register_all()
    app()


if __name__ == "__main__":
    main()
