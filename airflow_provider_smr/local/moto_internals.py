"""Everything the local stack does with moto beyond its public API, for the moto versions it was
tested with.

The S3 fast path shares an object's bytes with moto's key instead of copying them, which means
reading moto's private value buffer; the server replaces a few of moto's functions (request ids,
``PutFunctionEventInvokeConfig``, CloudFormation's resource parsing, a function's layers) and
memoises its dispatcher. All of that depends on moto's internals, so it lives here and only here,
and :func:`check_version` refuses a moto outside :data:`SUPPORTED_MOTO` (the pin in
``pyproject.toml``'s ``local`` extra) before the stack starts.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

#: the moto versions this module was tested with (pyproject.toml's ``local`` extra says the same)
SUPPORTED_MOTO = ">=5.2.6,<5.3"


class UnsupportedMotoError(RuntimeError):
    """The installed moto is not one the local stack was tested with."""


def installed_moto_version() -> str | None:
    """The installed moto's version (None: not installed); read without importing moto."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moto")
    except PackageNotFoundError:
        return None


def check_version() -> None:
    """Raise :class:`UnsupportedMotoError`, naming the version to install, unless the installed
    moto is in :data:`SUPPORTED_MOTO`."""
    from packaging.specifiers import SpecifierSet

    found = installed_moto_version()
    if found is not None and SpecifierSet(SUPPORTED_MOTO).contains(found, prereleases=True):
        return
    raise UnsupportedMotoError(
        f"the local stack needs moto{SUPPORTED_MOTO} (it relies on moto internals that change "
        f"between minor versions); found {found or 'no moto'}. Install it with: "
        f"pip install 'moto[server,s3,dynamodb,iam,sts,cloudformation,logs,awslambda]"
        f"{SUPPORTED_MOTO}' (or reinstall this package with its [local] extra)")


# -- S3 object values ---------------------------------------------------------------------------


class Replaced(Exception):
    """The key being read was replaced meanwhile: moto closes a replaced key's buffer."""


def adopt_value(key: Any, data: bytes) -> None:
    """Make ``data`` the value of a ``key`` just created empty, without copying it: the key's
    spooled buffer wraps the bytes object itself. ``io.BytesIO(data)`` shares ``data`` and copies
    it only when the buffer is written to (moto's value setter truncates and writes), so neither
    the request's bytes nor a copy's source can be changed through it. An object over the
    buffer's spool size takes moto's way (written to a temporary file)."""
    buffer: Any = getattr(key, "_value_buffer", None)
    if (type(data) is bytes and isinstance(getattr(buffer, "_file", None), io.BytesIO)
            and not getattr(buffer, "_rolled", True) and len(data) <= getattr(buffer, "_max_size", 0)):
        buffer._file = io.BytesIO(data)  # the key is not in a bucket yet: no reader to lock out
        key.contentsize = len(data)
    else:
        key.value = data


def whole_value(key: Any) -> bytes:
    """The whole value of ``key``: the bytes its in-memory buffer holds (shared, not copied), or
    moto's copy of them."""
    buffer = getattr(key, "_value_buffer", None)
    inner = getattr(buffer, "_file", None)
    if isinstance(inner, io.BytesIO) and not getattr(buffer, "_rolled", True):
        with key.lock:
            return inner.getvalue()
    return key.value


def read_value_range(key: Any, begin: int, length: int) -> bytes:
    """``length`` bytes of an object from ``begin``: moto's ``key.value`` reads (and copies) the
    whole object, so a ranged GET of a 1 GiB input would move 1 GiB for every 64 MiB split.
    Raises :class:`Replaced` when a PUT replaced the key while it was read."""
    buffer, lock = getattr(key, "_value_buffer", None), getattr(key, "lock", None)
    try:
        if buffer is None or lock is None:
            return key.value[begin:begin + length]
        with lock:
            buffer.seek(begin)
            return buffer.read(length)
    except ValueError as exc:  # I/O operation on closed file
        if getattr(buffer, "closed", False) or getattr(key, "disposed", False):
            raise Replaced from exc
        raise


# -- the server's app and patches ---------------------------------------------------------------


def build_app() -> Any:
    """moto's WSGI dispatcher, with the per-request backend lookup memoised."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        _hosts: dict[str, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # moto walks its package directory on every request to answer this; cache it.
            if host is None:
                return None
            try:
                return self._hosts[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                self._hosts[host] = backend
                return backend

    return Dispatcher(create_backend_app)


def warm_up(app: Any, services: tuple[str, ...]) -> None:
    """Create moto's per-service apps now so the first real request is not slow."""
    for service in services:
        with app.lock:
            if service not in app.app_instances:
                app.app_instances[service] = app.create_app(service)


_installed = threading.Lock()
_patched = False


def install_patches(unmodelled_resource: Callable[[str], str]) -> None:
    """Apply every change to moto's behaviour, once per process.

    :param unmodelled_resource: the message of the ``ValidationError`` that a template resource
        of a type moto does not model raises (moto would skip it silently).
    """
    global _patched
    with _installed:
        if _patched:
            return
        _cheaper_request_ids()
        _put_replaces_event_invoke_config()
        _strict_cloudformation(unmodelled_resource)
        _apply_function_layers()
        _update_reserved_concurrency()
        _patched = True


def _cheaper_request_ids() -> None:
    """moto draws each 52-character request id one random.choice at a time; use uuid4 instead."""
    import uuid

    import moto.core.responses as responses

    def gen_amzn_requestid_long(headerdict: dict[str, str] | None = None) -> str:
        request_id = (uuid.uuid4().hex + uuid.uuid4().hex)[:52].upper()
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = request_id
        return request_id

    setattr(responses, "gen_amzn_requestid_long", gen_amzn_requestid_long)  # noqa: B010 - a patch


def _put_replaces_event_invoke_config() -> None:
    """moto appends every PutFunctionEventInvokeConfig and Get returns the first; AWS replaces."""
    from moto.awslambda.models import LambdaBackend

    original = LambdaBackend.put_function_event_invoke_config

    def put_function_event_invoke_config(self: LambdaBackend, function_name: str,
                                         config: dict[str, Any]) -> Any:
        self.get_function(function_name).event_invoke_config = []
        return original(self, function_name, config)

    setattr(LambdaBackend, "put_function_event_invoke_config",  # noqa: B010 - a patch
            put_function_event_invoke_config)


def _strict_cloudformation(unmodelled_resource: Callable[[str], str]) -> None:
    """Register the models defined so far (moto caches its model map) and make a resource type
    that no model covers fail ``CreateStack``/``UpdateStack`` instead of being skipped."""
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError

    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    original = parsing.parse_resource

    def parse_resource(resource_json: dict[str, Any], resources_map: Any) -> Any:
        resource_type = resource_json["Type"]
        if (parsing.resource_class_from_type(resource_type) is None
                and resource_type not in parsing.NULL_MODELS):
            raise ValidationError(message=unmodelled_resource(resource_type))
        return original(resource_json, resources_map)

    parsing.parse_resource = parse_resource


def _apply_function_layers() -> None:
    """moto's ``AWS::Lambda::Function`` drops ``Layers``; the handler would miss its layers."""
    from moto.awslambda.models import LambdaFunction

    original: Any = LambdaFunction.__dict__["create_from_cloudformation_json"].__func__

    def create_from_cloudformation_json(cls: type, /, resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        fn = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        layers = cloudformation_json.get("Properties", {}).get("Layers")
        if layers:
            fn.layers = fn._get_layers_data(layers)
        return fn

    setattr(LambdaFunction, "create_from_cloudformation_json",  # noqa: B010 - a patch
            classmethod(create_from_cloudformation_json))


def _update_reserved_concurrency() -> None:
    """moto applies ``ReservedConcurrentExecutions`` when CloudFormation creates a function but not
    when it updates one; a stack update that sets or removes it must change the function."""
    from moto.awslambda.models import LambdaFunction

    original: Any = LambdaFunction.__dict__["update_from_cloudformation_json"].__func__

    def update_from_cloudformation_json(cls: type, /, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        fn = original(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                      region_name, **kwargs)
        fn.reserved_concurrency = cloudformation_json.get("Properties", {}).get(
            "ReservedConcurrentExecutions")
        return fn

    setattr(LambdaFunction, "update_from_cloudformation_json",  # noqa: B010 - a patch
            classmethod(update_from_cloudformation_json))
