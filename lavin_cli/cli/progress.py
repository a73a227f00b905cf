"""Rich progress bars fed by the library's progress callbacks; silent when not on a terminal."""

from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lavin_cli.cli.console import err

LABELS = {"context": "encoding context", "sample": "sampling", "query": "queries", "frames": "frames"}


@contextmanager
def bars(enabled: bool):
    """Yield a callback(progress) that draws one bar per stage on stderr (or does nothing)."""
    if not enabled or not err.is_terminal:
        yield lambda _p: None
        return
    columns = (TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        tasks: dict[str, int] = {}

        def update(p) -> None:
            if p.stage not in tasks:
                tasks[p.stage] = progress.add_task(LABELS.get(p.stage, p.stage), total=p.total)
            progress.update(tasks[p.stage], completed=p.done, total=p.total)

        yield update
