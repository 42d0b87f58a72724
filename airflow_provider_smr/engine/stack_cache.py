"""The deployed stack's description, kept between ``smr run`` processes.

Every ``smr run`` needs the stack's outputs (work bucket, functions, their versions, limits) and
the account's Lambda concurrency: a CloudFormation client, ``DescribeStacks`` and
``GetAccountSettings``, ~15 ms of a warm run's ~0.4 s. They change only when the stack is
deployed, so the CLI keeps them in ``stacks/`` of SMR's cache (``$SMR_CACHE_DIR`` or
``~/.cache/smr``, as botocore's parsed models), one small JSON file per endpoint, region,
credentials (their access key id: another account's stack of the same name is another entry)
and stack name, for :data:`MAX_AGE_S` (``$SMR_STACK_CACHE_S`` sets another age; ``0`` turns the
cache off).

An entry is written by every fresh description and every deploy the CLI makes, and forgotten
when a run that used it fails in any way; a run whose submit meets a missing resource (the work
bucket, a function version: the stack was deleted, or redeployed often enough for its older
versions to be collected) cancels what it had written and is submitted again on a fresh
description (see ``engine.commands``). A stack redeployed elsewhere while its previous
versions still exist is seen within :data:`MAX_AGE_S`; until then jobs run on the versions
described before, as a job submitted just before that deploy would.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_smr.deploy import StackInfo
    from airflow_provider_smr.engine.aws import AwsClients

#: how long a description is used without asking CloudFormation again (seconds); the environment
#: variable :data:`AGE_ENV` overrides it, ``0`` turns the cache off
MAX_AGE_S = 300.0
AGE_ENV = "SMR_STACK_CACHE_S"


def max_age_s() -> float:
    """:data:`MAX_AGE_S`, or ``$SMR_STACK_CACHE_S`` when it is set to a number of seconds."""
    try:
        return max(0.0, float(os.environ.get(AGE_ENV, MAX_AGE_S)))
    except ValueError:
        return MAX_AGE_S
FORMAT = 1


@dataclass(frozen=True)
class CachedStack:
    """A stack's description as the cache kept it."""

    stack: StackInfo
    account_concurrency: int | None
    saved_at: float


def cache_path(clients: AwsClients, stack_name: str) -> str | None:
    """Where ``stack_name``'s entry for these clients lives; None when there is no cache folder
    or no credentials to tell accounts apart, or the cache is off (``SMR_STACK_CACHE_S=0``)."""
    if max_age_s() <= 0:
        return None
    from airflow_provider_smr.engine.aws import cache_root

    base = cache_root()
    if not os.path.isabs(base):
        return None
    get_credentials = getattr(clients.session, "get_credentials", None)
    credentials = get_credentials() if callable(get_credentials) else None
    access_key = getattr(credentials, "access_key", None) if credentials is not None else None
    if not access_key:
        return None
    key = "\0".join([str(FORMAT), clients.endpoint_url or "", clients.region_name, access_key, stack_name])
    return os.path.join(base, "stacks", hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def load(path: str | None, now: float | None = None) -> CachedStack | None:
    """The entry at ``path`` if it is younger than :func:`max_age_s` and readable, else None."""
    from airflow_provider_smr.deploy import StackInfo

    if path is None:
        return None
    now = time.time() if now is None else now
    try:
        with open(path, encoding="utf-8") as fp:
            doc = json.load(fp)
        saved_at = float(doc["saved_at"])
        if doc.get("format") != FORMAT or not 0 <= now - saved_at < max_age_s():
            return None
        concurrency = doc.get("account_concurrency")
        return CachedStack(StackInfo.from_dict(doc["stack"]),
                           None if concurrency is None else int(concurrency), saved_at)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(path: str | None, stack: StackInfo, account_concurrency: int | None) -> None:
    """Keep ``stack``'s description at ``path`` (written whole, then renamed); best effort."""
    if path is None:
        return
    doc: dict[str, Any] = {"format": FORMAT, "saved_at": time.time(), "stack": stack.to_dict(),
                           "account_concurrency": account_concurrency}
    try:
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fp:
                json.dump(doc, fp)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, TypeError, ValueError):
        pass


def forget(path: str | None) -> None:
    """Drop the entry at ``path`` (nothing if there is none)."""
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
