"""``sphere methods``: every named method and every plug-in, with what it does and its source."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    app.command("methods")(methods)


def methods() -> None:
    """List the methods (--method), the architectures (--arch) and the plug-ins (--reg)."""
    from sphere_rl.methods import ARCHS, CALLBACKS, METHODS, PLUGIN_INFO, REGULARIZERS

    console = Console(width=150)
    table = Table(title="Methods (--method)")
    for column in ("method", "arch", "reg", "what it is", "source"):
        table.add_column(column, style="bold" if column == "method" else None)
    for spec in METHODS.values():
        table.add_row(spec.name, spec.arch, spec.reg, spec.description, spec.source)
    console.print(table)

    plugins = Table(title="Plug-ins (--reg, joined with '+', e.g. --reg sphere+cbp)")
    for column in ("plug-in", "kind", "what it does", "source"):
        plugins.add_column(column, style="bold" if column == "plug-in" else None)
    for name in [*REGULARIZERS, *CALLBACKS]:
        kind = "actor penalty" if name in REGULARIZERS else "network edit"
        description, source = PLUGIN_INFO[name]
        plugins.add_row(name, kind, description, source)
    console.print(plugins)
    console.print(f"Architectures (--arch): {', '.join(ARCHS)}")
    console.print("Defaults, MoE handling and citations: docs/methods.md")
