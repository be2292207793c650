"""The ``collapse-lab`` command line.

Each subcommand lives in its own module under :mod:`collapse_lab.commands` and is imported only when it is
invoked, so ``collapse-lab --help`` stays fast and ``import collapse_lab`` stays light. Only commands that
exist are listed in :data:`COMMANDS`.

Every :class:`~collapse_lab.errors.UserError` raised below a command becomes a one-line ``error: ...`` on
stderr with exit code 2 (no traceback).
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict, List, Optional

import click

from collapse_lab.__about__ import __version__
from collapse_lab.errors import UserError
from collapse_lab.io.inputs import printable

__all__ = ["main", "cli", "COMMANDS"]

#: command name -> "module:attribute" of its click command (kept in alphabetical order)
COMMANDS: Dict[str, str] = {
    "data": "collapse_lab.commands.data:data",
    "figures": "collapse_lab.commands.figures:figures_command",
    "reproduce": "collapse_lab.commands.reproduce:reproduce_command",
    "results": "collapse_lab.commands.results:results_command",
    "spectrum": "collapse_lab.commands.spectrum:spectrum",
    "sweep": "collapse_lab.commands.sweep:sweep_command",
    "train": "collapse_lab.commands.train:train_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="collapse-lab")
def cli() -> None:
    """Study dimensional collapse in CTR prediction ensembles (KDEF, arXiv 2411.16122)."""


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one-line messages (exit 2)."""
    try:
        cli.main(args=argv, prog_name="collapse-lab", standalone_mode=False)
    except UserError as exc:
        # one line, whatever the message quotes from input files (control characters, terminal escapes)
        click.echo(f"error: {printable(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)
