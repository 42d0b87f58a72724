"""``smr run``'s live progress: one rich bar per phase (step N map, step N reduce, commit) on stderr.

:class:`PhaseBars` is the ``on_progress`` callback of
:meth:`~airflow_provider_smr.engine.runner.JobRunner.wait`: every poll updates the bars from the
job's :class:`~airflow_provider_smr.engine.watch.JobStatus`, and a line under them shows records,
bytes, throughput and elapsed time from its
:class:`~airflow_provider_smr.engine.watch.ProgressTracker`. Only used on a terminal: elsewhere
(CI logs) the runner's rate-limited plain lines are the progress.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow_provider_smr.engine.watch import JobStatus, ProgressTracker, format_bytes, format_elapsed, short_count
from lambda_handlers import protocol

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.progress import TaskID

COMMIT = "commit"


def stderr_console() -> Console:
    """The console bars draw on: stderr (stdout stays the result). Rich decides whether it is a
    terminal (``FORCE_COLOR`` / ``TTY_COMPATIBLE`` force it, e.g. in tests)."""
    from rich.console import Console

    return Console(stderr=True)


def _phases(status: JobStatus) -> list[tuple[str, int]]:
    """(bar name, total) for every phase of the job, in order, then the commit."""
    rows = []
    for index, phases in enumerate(status.steps):
        for phase in (protocol.MAP, protocol.REDUCE):
            if phase in phases:
                rows.append((f"step {index + 1} {phase}", phases[phase].total))
    return [*rows, (COMMIT, 1)]


class PhaseBars:
    """Live bars for one job; use as a context manager around ``wait``.

    While the bars are shown, the ``smr`` and ``airflow_provider_smr`` log lines are printed above
    them (through the same console) instead of tearing them.
    """

    LOGGERS = ("smr", "airflow_provider_smr")

    def __init__(self, console: Console, job_id: str | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.job_id = job_id
        self.summary = ""
        bars = self

        class _Progress(Progress):
            def get_renderables(self) -> Iterable[RenderableType]:
                yield self.make_tasks_table(self.tasks)
                if bars.summary:
                    from rich.text import Text

                    yield Text(bars.summary)

        self.progress = _Progress(
            TextColumn("{task.description:<16}"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), console=console, transient=False)
        self.tasks: dict[str, TaskID] = {}
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []

    def __enter__(self) -> PhaseBars:
        from rich.logging import RichHandler

        handler = RichHandler(console=self.console, show_path=False, show_level=False)
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, list(logger.handlers), logger.propagate))
            logger.handlers, logger.propagate = [handler], False
        self.progress.start()
        if self.job_id:
            self.progress.console.print(f"job {self.job_id}", highlight=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        for logger, handlers, propagate in self._saved:
            logger.handlers, logger.propagate = handlers, propagate
        self._saved.clear()

    def __call__(self, status: JobStatus, tracker: ProgressTracker, now: float) -> None:
        """Update the bars from one poll (the runner's ``on_progress``)."""
        if not self.tasks:
            for name, total in _phases(status):
                self.tasks[name] = self.progress.add_task(name, total=total, detail="")
        for index, phases in enumerate(status.steps):
            for phase, p in phases.items():
                detail = f"running {p.running}, failed {p.failed}" if p.running or p.failed else ""
                self.progress.update(self.tasks[f"step {index + 1} {phase}"], completed=p.done,
                                     detail=detail)
        committed = status.state == protocol.SUCCEEDED
        detail = status.state.lower() if status.terminal else (
            "running" if status.phase == COMMIT else "")
        self.progress.update(self.tasks[COMMIT], completed=1 if committed else 0, detail=detail)
        totals, elapsed = tracker.totals(), tracker.elapsed(now)
        records_per_s, bytes_per_s = tracker.rates(now)
        self.summary = (f"{status.state} | {totals['records']:,} records, {format_bytes(totals['bytes'])} "
                        f"read | {format_bytes(bytes_per_s)}/s, "
                        f"{short_count(records_per_s)} records/s | "
                        f"elapsed {format_elapsed(elapsed)}")
        self.progress.refresh()
