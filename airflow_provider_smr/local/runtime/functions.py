"""Read a deployed function's definition straight from moto's Lambda backend (same process)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# arn, version, code sha, handler, environment, memory, timeout, layer hashes, execution role
WorkerKey = tuple[str, str, str, str, tuple[tuple[str, str], ...], int, float, tuple[str, ...], str]


class FunctionNotFound(Exception):
    """No function with this name, ARN or qualifier."""


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one function version, frozen at invoke time."""

    name: str
    arn: str
    version: str
    handler: str
    code: bytes = field(repr=False)
    code_sha: str
    environment: tuple[tuple[str, str], ...]
    memory_mb: int
    timeout_s: float
    reserved_concurrency: int | None
    max_retry_attempts: int
    max_event_age_s: int | None
    layers: tuple[bytes, ...] = field(default=(), repr=False)
    #: the layers' code hashes as Lambda reports them (hashing a 100 MB layer per invoke is slow)
    layer_shas: tuple[str, ...] = ()
    architecture: str = "x86_64"
    #: the execution role's ARN (its credentials are the worker's)
    role: str = ""

    @cached_property
    def worker_key(self) -> WorkerKey:
        """Workers are reused only for the same code and configuration."""
        if len(self.layer_shas) == len(self.layers) and all(self.layer_shas):
            layers = self.layer_shas
        else:
            layers = tuple(hashlib.sha256(layer).hexdigest() for layer in self.layers)
        return (self.arn, self.version, self.code_sha, self.handler, self.environment,
                self.memory_mb, self.timeout_s, layers, self.role)


def lookup(account_id: str, region: str, name: str, qualifier: str | None) -> FunctionSpec:
    """Resolve ``name`` (name, partial or full ARN, ``name:version``) and ``qualifier`` to a
    :class:`FunctionSpec`: a published version runs its own code and configuration."""
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends[account_id][region]
    try:
        fn = backend.get_function(name, qualifier)
    except Exception as exc:  # moto raises several types for "not found"
        raise FunctionNotFound(_arn(account_id, region, name, qualifier)) from exc
    if fn is None:
        raise FunctionNotFound(_arn(account_id, region, name, qualifier))
    return _spec(backend, fn)


def _spec(backend: Any, fn: Any) -> FunctionSpec:
    config = fn.event_invoke_config[-1].config if fn.event_invoke_config else {}
    # Reserved concurrency belongs to the function, not to a version (a version's copy is stale).
    reserved = backend.get_function(fn.function_name).reserved_concurrency
    return FunctionSpec(
        name=fn.function_name,
        arn=fn.function_arn,
        version=str(fn.version),
        handler=fn.handler or "",
        code=getattr(fn, "code_bytes", b"") or b"",
        code_sha=getattr(fn, "code_sha_256", "") or "",
        environment=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
        memory_mb=int(fn.memory_size or 128),
        timeout_s=float(fn.timeout or 3),
        reserved_concurrency=None if reserved is None else int(reserved),
        max_retry_attempts=int(config.get("MaximumRetryAttempts", 2)),
        max_event_age_s=config.get("MaximumEventAgeInSeconds"),
        layers=tuple(_layer_bytes(backend, layer["Arn"]) for layer in (fn.layers or [])),
        layer_shas=tuple(_layer_sha(backend, layer["Arn"]) for layer in (fn.layers or [])),
        architecture=str((getattr(fn, "architectures", None) or ["x86_64"])[0]),
        role=str(getattr(fn, "role", "") or ""),
    )


def _layer_bytes(backend: Any, arn: str) -> bytes:
    layer = backend.layers_versions_by_arn(arn)
    return getattr(layer, "code_bytes", b"") or b""


def _layer_sha(backend: Any, arn: str) -> str:
    layer = backend.layers_versions_by_arn(arn)
    return str(getattr(layer, "code_sha_256", "") or "")


def _arn(account_id: str, region: str, name: str, qualifier: str | None) -> str:
    if name.startswith("arn:"):
        return name
    suffix = f":{qualifier}" if qualifier else ""
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}{suffix}"
