"""A local folder as a job's output, held to the contract of an S3 output.

A folder that holds ``_SUCCESS`` is a committed result: it is refused unless the caller passes
overwrite. With it, :func:`replace_output_folder` has the new files written into a sibling temporary
folder first (same filesystem, so each move is one atomic rename); only when they are all complete
does it take ``_SUCCESS`` away, move the new parts in, remove the parts the new result does not
have, and move the new ``_SUCCESS`` in last — the order of the S3 commit. A failure while the new
files are written leaves the old output exactly as it was; files in the folder that are not output
parts (``part-*``) or ``_SUCCESS`` are left alone, as on S3.

Every place that copies a result to a local folder goes through here: ``smr run --local`` (via
:func:`airflow_provider_smr.engine.commands.download_output`), the demo, and the in-process runner.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from lambda_handlers import protocol

if TYPE_CHECKING:
    from collections.abc import Callable


def check_output_folder(folder: Path, *, overwrite: bool, overwrite_name: str = "--overwrite") -> None:
    """Refuse a folder that holds a committed result (``_SUCCESS``) unless ``overwrite``.

    Call it before anything runs, so a refused run costs nothing.

    :param folder: the local output folder (need not exist).
    :param overwrite: replace a committed result.
    :param overwrite_name: how the caller's interface spells overwrite, for the message
        (``--overwrite`` for the CLI, ``overwrite=True`` for Python callers).
    :raises OutputExistsError: the folder holds ``_SUCCESS`` and ``overwrite`` is false.
    :raises NotADirectoryError: ``folder`` is a file.
    """
    from airflow_provider_smr.engine.runner import OutputExistsError

    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"output {str(folder)!r} is a file, not a folder")
    if not overwrite and (folder / protocol.SUCCESS_MARKER).exists():
        raise OutputExistsError(f"output {str(folder)!r} already holds a committed result "
                                f"({protocol.SUCCESS_MARKER}); pass {overwrite_name} to replace it")


def replace_output_folder(folder: Path, fill: Callable[[Path], object], *, overwrite: bool,
                          overwrite_name: str = "--overwrite") -> list[str]:
    """Make ``folder`` hold exactly the new result that ``fill`` writes, or change nothing.

    :param folder: the local output folder (created if missing, with its parents).
    :param fill: writes the new parts and ``_SUCCESS`` (and any other files of the result) into the
        empty folder it is given; anything it raises leaves ``folder`` untouched.
    :param overwrite: replace a committed result (else it is refused, see :func:`check_output_folder`).
    :param overwrite_name: how the caller's interface spells overwrite, for the refusal's message.
    :returns: the paths of the files now in ``folder`` that came from ``fill``, ``_SUCCESS`` last.
    """
    check_output_folder(folder, overwrite=overwrite, overwrite_name=overwrite_name)
    beside = folder.absolute()  # "." has no name and no parent of its own
    beside.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{beside.name or 'output'}.smr-", dir=beside.parent))
    try:
        fill(staging)
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        if protocol.SUCCESS_MARKER not in names:
            raise ValueError(f"the new result has no {protocol.SUCCESS_MARKER}: nothing was replaced")
        check_output_folder(folder, overwrite=overwrite, overwrite_name=overwrite_name)  # raced?
        folder.mkdir(exist_ok=True)
        (folder / protocol.SUCCESS_MARKER).unlink(missing_ok=True)  # the folder is in flux from here
        names.remove(protocol.SUCCESS_MARKER)
        for name in names:
            os.replace(staging / name, folder / name)
        for old in folder.iterdir():
            if old.name.startswith(protocol.PART_PREFIX) and old.name not in names and old.is_file():
                old.unlink()
        os.replace(staging / protocol.SUCCESS_MARKER, folder / protocol.SUCCESS_MARKER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [str(folder / name) for name in [*names, protocol.SUCCESS_MARKER]]
