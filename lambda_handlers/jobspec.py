"""What ``job.pkl`` holds: the user's functions and the job's settings, as plain data.

The control plane (``airflow_provider_smr.job``) builds a :class:`JobSpec` and cloudpickles it;
handlers unpickle it. It lives in the data plane so that unpickling inside Lambda never needs
``airflow_provider_smr`` (or airflow) importable there. Standard library only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

SPEC_VERSION = 1


class JobSpecError(ValueError):
    """The pickled job cannot run here (wrong Python, unknown version)."""


@dataclass
class StepSpec:
    """One MapReduce step.

    ``mapper`` is ``fn(record) -> iterable of (key, value)``, or for step 0 of a job with named
    inputs a dict ``{input_name: fn}``. Steps after the first receive ``(key, value)`` tuples
    produced by the previous step's reducers. ``reducer=None`` makes the step map-only (only
    allowed for the last step). ``partitioner(key, n) -> int`` defaults to a stable hash.
    """

    mapper: Callable[..., Any] | dict[str, Callable[..., Any]]
    combiner: Callable[..., Any] | None = None
    reducer: Callable[..., Any] | None = None
    partitioner: Callable[[Any, int], int] | None = None
    num_reducers: int | None = None


@dataclass
class JobSpec:
    steps: list[StepSpec]
    name: str = "job"
    input_format: str = "text"  # text | csv | jsonl (per input: see input_formats)
    input_formats: dict[str, str] = field(default_factory=dict)  # input name -> format
    output_format: str = "jsonl"  # jsonl | tsv | csv
    serializer: str = "json"  # json | pickle: how keys and values travel through the shuffle
    params: dict[str, Any] = field(default_factory=dict)  # job_params, rendered by Airflow
    max_bad_records: int = 0
    python: tuple[int, int] = field(default_factory=lambda: tuple(sys.version_info[:2]))
    version: int = SPEC_VERSION

    def check_runtime(self) -> None:
        """Refuse to run pickled code under another Python minor version (pickles are not portable)."""
        here = tuple(sys.version_info[:2])
        if tuple(self.python) != here:
            raise JobSpecError(
                f"job was pickled by Python {self.python[0]}.{self.python[1]} but this function runs "
                f"Python {here[0]}.{here[1]}; deploy the stack with runtime python{self.python[0]}."
                f"{self.python[1]}"
            )
        if self.version != SPEC_VERSION:
            raise JobSpecError(f"job spec version {self.version} is not supported (want {SPEC_VERSION})")
