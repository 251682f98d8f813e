"""The Typer application: commands joined here, domain errors turned into one line and exit 2."""

from __future__ import annotations

import os
import warnings

import typer
from rich.markup import escape
from typer.core import TyperGroup

from netadapt import __version__
from netadapt.cli import adapt, cost, data, estimate, eval, export, front, plugins, predict, reference, remap, search, select, show, train
from netadapt.cli.console import printable, stderr, warn
from netadapt.errors import NetadaptError, NetadaptWarning


class NetadaptGroup(TyperGroup):
    """Prints a :class:`NetadaptError` as one line on stderr and exits 2 (``NETADAPT_DEBUG=1``: traceback)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except NetadaptError as error:
            if os.environ.get("NETADAPT_DEBUG"):
                raise
            stderr.print(f"[bold red]error:[/] {escape(printable(one_line(error)))}", soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 2)) from None


def one_line(error: NetadaptError) -> str:
    """The error's message; one raised in a DataLoader worker comes back wrapped by torch in the
    worker's traceback ("Caught DataError in DataLoader worker process 0. Original Traceback...",
    20-46 lines): its last line holds the original message."""
    message = str(error)
    if "in DataLoader worker process" in message:
        last = message.rstrip().splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        message = last.removeprefix(prefix).removeprefix(f"{type(error).__qualname__}: ")
    return message


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Every warning as one line (not Python's "file:line: Category" and a source line): netadapt's own as they are,
    a library's (PIL, torchvision) with its category and the module that raised it."""
    if issubclass(category, NetadaptWarning):
        warn(str(message))
    else:
        text = " ".join(str(message).split())  # a library's message may span lines
        warn(f"{text} ({category.__name__}, {os.path.basename(filename)}:{lineno})")


app = typer.Typer(
    cls=NetadaptGroup,
    name="netadapt",
    help="Adapt a classification-pretrained network into a detection backbone (parameter remapping + network adaptation).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netadapt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """netadapt: parameter remapping and network adaptation (FNA) for MobileNetV2-family backbones."""


app.command("plugins")(plugins.plugins_command)
app.command("config")(reference.config_command)
app.command("spaces")(reference.spaces_command)
app.command("show")(show.show_command)
app.command("remap")(remap.remap_command)
app.command("cost")(cost.cost_command)
app.command("search")(search.search_command)
app.command("select")(select.select_command)
app.command("train")(train.train_command)
app.command("eval")(eval.eval_command)
app.command("predict")(predict.predict_command)
app.command("adapt")(adapt.adapt_command)
app.command("export")(export.export_command)
app.command("front")(front.front_command)
app.command("estimate")(estimate.estimate_command)
app.add_typer(data.app, name="data")


def main() -> None:
    warnings.showwarning = _show_warning
    app()
