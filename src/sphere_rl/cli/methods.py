"""``sphere methods``: every named method and every plug-in, with what it does and its source."""

from __future__ import annotations

from typing import Annotated

import typer

from sphere_rl.cli.common import fail, load_plugins_or_fail
from sphere_rl.cli.output import make_console, name_table
from sphere_rl.config import PRESETS


def register(app: typer.Typer) -> None:
    app.command("methods")(methods)


def methods(
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", help="Import this module first (its registrations are listed)."),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help=f"Show the settings each method gets under this preset: {', '.join(PRESETS)}"
            " (cw10 is the default benchmark's)."
        ),
    ] = "cw10",
) -> None:
    """List the methods (--method), the architectures (--arch) and the plug-ins (--reg)."""
    from sphere_rl.config import build_config
    from sphere_rl.methods import ARCHS, COMPONENTS, METHODS, method_settings

    if preset not in PRESETS:
        fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    load_plugins_or_fail(plugin)
    console = make_console()
    table = name_table(
        "Methods (--method)",
        "method",
        ["arch", "reg", f"settings (preset {preset})", "what it is", "source"],
    )
    for spec in METHODS.values():
        settings = method_settings(build_config({"method": spec.name, "preset": preset}))
        shown = ", ".join(f"{key}={value}" for key, value in settings.items()) or "-"
        table.add_row(spec.name, spec.arch, spec.reg, shown, spec.description, spec.source)
    console.print(table)

    plugins = name_table(
        "Plug-ins (--reg, joined with '+', e.g. --reg sphere+cbp)",
        "plug-in",
        ["kind", "what it does", "own settings (default)", "source"],
    )
    for component in COMPONENTS.values():
        own = ", ".join(
            f"{component.name}.{key}={setting.default}"
            + (f": {setting.help}" if setting.help else "")
            for key, setting in component.settings.items()
        )
        plugins.add_row(
            component.name, component.kind, component.description, own or "-", component.source
        )
    console.print(plugins)
    console.print(
        "Set a plug-in's own setting as <plug-in>.<key>=VALUE (sphere train, sphere sweep) or as"
        ' a --config key ("<plug-in>.<key>": VALUE).'
    )
    console.print(f"Architectures (--arch): {', '.join(ARCHS)}")
    console.print("Defaults, MoE handling and citations: docs/methods.md")
