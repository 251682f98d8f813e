"""``netadapt config`` and ``netadapt spaces``: the references generated from the code (docs/config.md, docs/search-spaces.md)."""

from __future__ import annotations

import typer


def config_command(
    section: str = typer.Option(None, "--section", help="Only this section: train, search, genotype or space."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every key of the YAML files netadapt reads: section, type, default, unit, who reads it (the core or a plugin:
    the installed plugins' options are listed), what it does."""
    from netadapt.jobs.reference import config_json, config_markdown

    typer.echo(config_json(section) if json_ else config_markdown(section), nl=json_)


def spaces_command(
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The registered search spaces: depths, searched stages, candidates, what makes a base fit."""
    from netadapt.jobs.reference import spaces_json, spaces_markdown

    typer.echo(spaces_json() if json_ else spaces_markdown(), nl=json_)
