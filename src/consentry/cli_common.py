"""Bits shared by the CLI modules: exit codes, stderr console, progress bar, failing cleanly."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
err_console = Console(stderr=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def progress_bar(console: Console | None = None) -> Progress:
    """A Rich progress bar on stderr, shown only when stderr is a terminal."""
    console = console or err_console
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
