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
    from netadapt import jobs

    infos = jobs.installed_plugins(include_builtins=all_)
    if json_:
        print_json([info.__dict__ | {"hooks": list(info.hooks), "notes": list(info.notes)} for info in infos])
        return
    if not infos:
        stdout.print("No external plugins installed (use --all to include the built-ins).")
        return
    # Fits 80 columns with --all: the distribution says built-in ("netadapt"), hooks lose their "register_" prefix
    # and go one per line; only names and notes fold (a header word is never broken).
    table = Table(title="netadapt plugins", caption="notes: names overridden (override=True), registered again (a conflict) or missing members")
    table.add_column("name", overflow="fold", min_width=4)
    table.add_column("version", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("hooks (register_*)", no_wrap=True)
    table.add_column("notes", overflow="fold", min_width=5)
    for info in infos:
        hooks = "\n".join(hook.removeprefix("register_") for hook in info.hooks)
        table.add_row(info.name, info.version, info.distribution, hooks, "\n".join(info.notes))
    stdout.print(table)
