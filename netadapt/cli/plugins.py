"""``netadapt plugins``: the installed plugins, their versions and hooks."""

from __future__ import annotations

import typer
from rich.table import Table

from netadapt.cli.console import print_json, stdout


def plugins_command(
    all_: bool = typer.Option(False, "--all", help="Include the built-in plugins."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List plugins (entry-point group 'netadapt'): name, version, distribution, hooks, and the names each
    overrides (override=True), registers again (a conflict) or registers without a required member."""
    from netadapt.plugins import plugin_infos

    infos = plugin_infos(include_builtins=all_)
    if json_:
        print_json([info.__dict__ | {"hooks": list(info.hooks), "notes": list(info.notes)} for info in infos])
        return
    if not infos:
        stdout.print("No external plugins installed (use --all to include the built-ins).")
        return
    table = Table(title="netadapt plugins")
    for column in ("name", "version", "distribution", "built-in", "hooks", "overrides, conflicts, problems"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.version, info.distribution, "yes" if info.builtin else "", ", ".join(info.hooks), "\n".join(info.notes))
    stdout.print(table)
