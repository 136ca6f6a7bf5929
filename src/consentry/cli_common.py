"""Bits shared by the CLI modules: exit codes, stderr console, progress bar, failing cleanly."""

from __future__ import annotations

import sys
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
#: Messages and summaries. Redirected to a file or a pipe, a line is never broken at 80 columns in
#: the middle of a sentence (soft wrap); at a terminal Rich wraps to the window as usual.
err_console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 error``, ``2 errors``, ``0 files``: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def progress_bar(console: Console | None = None, *columns) -> Progress:
    """A Rich progress bar on stderr, shown only when stderr is a terminal.

    It never captures stdout or stderr (Rich's default does, and then results meant for a file or
    a pipe land on the terminal): print results with :func:`write_result`.
    """
    console = console or err_console
    return Progress(
        *(columns or (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )),
        console=console,
        transient=True,
        disable=not console.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def write_result(text: str, progress: Progress | None = None) -> None:
    """Write result text (one or more whole lines) to stdout, flushed at once.

    When stdout is a terminal too and a progress bar is showing there, the text is printed above
    the bar instead of through it; otherwise it goes to stdout untouched (a file, a pipe).
    """
    if not text.endswith("\n"):
        text += "\n"
    live = progress is not None and progress.live.is_started
    if live and sys.stdout.isatty():
        progress.console.print(text[:-1], markup=False, highlight=False, emoji=False, soft_wrap=True)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def _hide_flag_types() -> None:
    """Typer (0.2x) labels every on/off flag ``<bool>`` in help, --help itself included, as if it
    took a value. Flags take none: show no type for them."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - a Typer without its own option class
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_consentry_flags", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return original(self, ctx)

    display_type_rich._consentry_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


# ------------------------------------------------------------------ tables for people
HEX_FULL = 64  # widest hash cell shown whole (sha256, PDQ)
_GAP = 2  # columns apart in compact tables


def print_table(columns: list[str], rows: list[list[str]], console: Console | None = None) -> None:
    """A listing on stdout: a table for a person at a terminal (long values fold, none is cut),
    tab-separated lines with a header when stdout is a file or a pipe, so that nothing depends on
    an assumed width and every value is whole (tabs and line breaks inside values become spaces)."""
    from rich.table import Table

    out = console or Console()
    if not out.is_terminal:
        clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
        for line in [columns, *rows]:
            sys.stdout.write("\t".join(str(v).translate(clean) for v in line) + "\n")
        return
    table = Table()
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def shorten(value: str, width: int) -> str:
    """``value`` cut to ``width`` characters, the last an ellipsis when anything was cut."""
    return value if len(value) <= width else value[: max(width - 1, 0)] + "…"


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def hash_table(results, width: int):
    """`consentry hash --format table`: one short row per file.

    Hashes are shown whole when the terminal is wide enough, else as their first 16 hex digits
    and an ellipsis (JSON Lines, the default format, always has every digit). The frame count and
    error columns appear only when some file has one. Path and error fold, sized so that a file's
    row takes at most two lines at 80 columns for ordinary paths.
    """
    from rich import box
    from rich.table import Table

    rows = []
    for r in results:
        rows.append({
            "path": r.path, "type": r.content_type or "", "size": human_size(r.size),
            "sha256": r.sha256 or "", "pdq": r.pdq or "",
            "q": "" if r.pdq_quality is None else str(r.pdq_quality),
            "frames": "" if r.vpdq is None else str(len(r.vpdq)), "error": r.error or "",
        })
    columns = ["path", "type", "size", "sha256", "pdq", "q"]
    if any(row["frames"] for row in rows):
        columns.append("frames")
    if any(row["error"] for row in rows):
        columns.append("error")

    def widest(col: str) -> int:
        return max([len(col)] + [len(row[col]) for row in rows])

    fixed = sum(widest(c) for c in columns if c in ("type", "size", "q", "frames"))
    flex = [c for c in columns if c in ("path", "error")]
    want = {c: widest(c) for c in flex}
    gaps = _GAP * (len(columns) - 1)
    if fixed + gaps + 2 * HEX_FULL + sum(want.values()) <= width:
        hex_w = HEX_FULL
    else:  # leave path and error room for two lines each
        two_lines = sum(-(-w // 2) for w in want.values())
        hex_w = max(9, min(17, (width - fixed - gaps - two_lines) // 2))
    room = max(width - fixed - gaps - 2 * hex_w, 8 * len(flex))
    widths = dict(want)
    if sum(want.values()) > room:
        total = sum(want.values())
        for c in flex:
            widths[c] = max(8, room * want[c] // total)

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for c in columns:
        if c in flex:
            table.add_column(c, overflow="fold", width=widths[c])
        else:
            table.add_column(c, no_wrap=True, justify="right" if c in ("size", "q", "frames") else "left")
    for row in rows:
        table.add_row(*(shorten(row[c], hex_w) if c in ("sha256", "pdq") else row[c] for c in columns))
    return table
