"""Everything the local stack does with moto beyond its public API, for the moto versions it was
tested with.

The S3 fast path shares an object's bytes with moto's key instead of copying them, which means
reading moto's private value buffer; the server replaces a few of moto's functions (request ids,
``PutFunctionEventInvokeConfig``, CloudFormation's resource parsing, a function's layers and
architecture, Lambda's code size limits, published versions: their description, configs,
attributes, deletion and the moment they are published in a stack update), memoises its
dispatcher and reads its botocore models through the control plane's loader. All of that
depends on moto's internals, so it lives here and only here, and :func:`check_version` refuses
a moto outside :data:`SUPPORTED_MOTO` (the pin in ``pyproject.toml``'s ``local`` extra) before
the stack starts.
"""

from __future__ import annotations

import io
import sys
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


# -- S3 key names in order ----------------------------------------------------------------------


_KeyStore: Any = None


def sorted_key_store_class() -> Any:
    """moto's per-bucket key store (``_VersionedKeyStore``, a dict of key name -> versions) that also
    keeps its names in a sorted list, updated under a lock by every method that adds or removes a
    name. moto answers each ListObjectsV2 page by copying, filtering and sorting every key of the
    bucket (about 1 s a page at 20,000 keys); with the names in order a page is two bisections and
    the page's keys (:meth:`page`)."""
    global _KeyStore
    if _KeyStore is not None:
        return _KeyStore
    import bisect

    from moto.s3.models import FakeDeleteMarker
    from moto.s3.utils import _VersionedKeyStore

    top = chr(0x10FFFF)  # sorts after any character a key name may hold

    class SortedKeyStore(_VersionedKeyStore):
        _lock: threading.RLock
        _names: list[str]

        def _index(self) -> list[str]:
            try:
                return self._names
            except AttributeError:  # created without __init__ (copy, pickle): index what it holds
                self._lock = threading.RLock()
                self._names = sorted(dict.keys(self))
                return self._names

        def _added(self, name: str) -> None:
            names = self._index()
            i = bisect.bisect_left(names, name)
            if i == len(names) or names[i] != name:
                names.insert(i, name)

        def _removed(self, name: str) -> None:
            names = self._index()
            i = bisect.bisect_left(names, name)
            if i < len(names) and names[i] == name:
                del names[i]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._lock = threading.RLock()
            super().__init__(*args, **kwargs)
            self._names = sorted(dict.keys(self))

        def __setitem__(self, key: str, value: Any) -> Any:
            with self._lock:
                super().__setitem__(key, value)
                self._added(key)

        def setlist(self, key: Any, list_: Any) -> Any:
            with self._lock:
                super().setlist(key, list_)
                self._added(key)

        def setdefault(self, key: str, default: Any = None) -> Any:
            with self._lock:
                value = super().setdefault(key, default)
                self._added(key)
                return value

        def update(self, *args: Any, **kwargs: Any) -> None:
            with self._lock:
                for key, value in dict(*args, **kwargs).items():
                    dict.__setitem__(self, key, value)
                    self._added(key)

        def pop(self, key: str, *default: Any) -> Any:
            with self._lock:
                if default and key not in self:
                    return default[0]
                value = super().pop(key)
                self._removed(key)
                return value

        def __delitem__(self, key: str) -> None:
            with self._lock:
                super().__delitem__(key)
                self._removed(key)

        def popitem(self) -> tuple[str, Any]:
            with self._lock:
                key, value = super().popitem()
                self._removed(key)
                return key, value

        def clear(self) -> None:
            with self._lock:
                super().clear()
                self._index().clear()

        def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
            self.update(other)
            return self

        def page(self, prefix: str, delimiter: str, after: str | None, count: int) -> list[Any]:
            """Up to ``count`` entries of a listing in name order, as moto's ``list_objects_v2``
            has them: the latest version (a ``FakeKey``) of each key under ``prefix``, except
            delete markers, and for keys with ``delimiter`` after the prefix their common prefix
            (a ``str``, once, keys or not deleted), leaving out everything named up to ``after``."""
            out: list[Any] = []
            with self._lock:
                names = self._index()
                i = bisect.bisect_left(names, prefix) if prefix else 0
                if after is not None:
                    i = max(i, bisect.bisect_right(names, after))
                n = len(names)
                if not delimiter:  # keys only: the names under the prefix are one run of the index
                    get = dict.__getitem__
                    while i < n and len(out) < count:
                        run = names[i:i + count - len(out)]
                        if not run[-1].startswith(prefix):  # the run passes the prefix's last name
                            run = run[:bisect.bisect_left(run, True, key=lambda name: not name.startswith(prefix))]
                            n = i + len(run)
                        i += len(run)
                        for name in run:
                            versions = get(self, name)
                            if versions and not isinstance(versions[-1], FakeDeleteMarker):
                                out.append(versions[-1])
                    return out
                while i < n and len(out) < count:
                    name = names[i]
                    if not name.startswith(prefix):
                        break
                    cut = name.find(delimiter, len(prefix)) if delimiter else -1
                    if cut >= 0:
                        folder = name[:cut + len(delimiter)]
                        if after is None or folder > after:
                            out.append(folder)
                        i = bisect.bisect_left(names, folder + top, i)
                        while i < n and names[i].startswith(folder):
                            i += 1
                        continue
                    versions = dict.__getitem__(self, name)
                    if versions and not isinstance(versions[-1], FakeDeleteMarker):
                        out.append(versions[-1])
                    i += 1
            return out

    _KeyStore = SortedKeyStore
    return _KeyStore


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
        _direct_model_loading()
        _sorted_bucket_keys()
        _put_replaces_event_invoke_config()
        _strict_cloudformation(unmodelled_resource)
        _json_templates_read_as_json()
        _apply_function_layers()
        _lambda_code_size_limits()
        _versions_as_lambda_keeps_them()
        _versions_after_function_updates()
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


def _direct_model_loading() -> None:
    """moto reads botocore's models as the control plane does (``engine.aws.direct_loader``: a
    service's own folders, plain dicts, the large files from their parsed copy in SMR's cache).

    moto needs a service's model to answer its first request (``get_service_model``, with a new
    ``Loader`` that lists all ~400 of botocore's service folders each time) and, to make its
    first backend, botocore's ``endpoints.json`` (1.2 MB of JSON) and the service's model again
    (``get_available_regions``, through a boto3 ``Session`` of its own). Same files, same
    ``moto-extras`` on top: the same models.
    """
    import boto3
    import moto.core.loaders as moto_loaders
    import moto.core.utils as moto_utils
    from moto.core.base_backend import AccountSpecificBackend

    from airflow_provider_smr.engine.aws import direct_loader

    class MotoDirectLoader(moto_loaders.Loader, type(direct_loader())):  # type: ignore[misc]
        """moto's extras over the control plane's loader."""

    loader = MotoDirectLoader(extra_search_paths=[moto_loaders.moto_root])
    setattr(moto_utils, "create_loader", lambda: loader)  # noqa: B010 - a patch; its callers cache per service

    session = boto3.session.Session()
    session._session.register_component("data_loader", direct_loader())

    def get_session(cls: type) -> Any:
        return session

    AccountSpecificBackend.get_session = classmethod(get_session)  # type: ignore[assignment,method-assign]


def _sorted_bucket_keys() -> None:
    """Every bucket keeps its key names in order (:func:`sorted_key_store_class`), for the S3 fast
    path's ListObjectsV2."""
    from moto.s3.models import FakeBucket

    store = sorted_key_store_class()
    init = FakeBucket.__init__

    def bucket_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.keys = store()

    setattr(FakeBucket, "__init__", bucket_init)  # noqa: B010 - a patch


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


# Services whose models moto's CloudFormation imports only to find resource types, and which no
# template of the local stack uses: EC2 and API Gateway alone took 1.5-2 s of its start.
CFN_UNUSED_SERVICES = ("apigateway", "autoscaling", "batch", "datapipeline", "ec2", "ecs", "efs", "elb",
                       "elbv2", "emr", "iot", "rds", "redshift", "route53", "sagemaker", "ssm",
                       "stepfunctions")


def _import_cloudformation_lean() -> None:
    """Import ``moto.cloudformation`` with placeholder modules for :data:`CFN_UNUSED_SERVICES`.

    Their resource types are then unmodelled (a template using one fails ``CreateStack`` with our
    ValidationError); everything else is moto's own. The placeholders are removed again, so a
    request to one of those services still imports the real models. If moto ever needs more of
    them than the names below, the import is done the ordinary way.
    """
    import types

    if "moto.cloudformation.parsing" in sys.modules:
        return
    stubs: dict[str, types.ModuleType] = {}
    for service in CFN_UNUSED_SERVICES:
        package = f"moto.{service}"
        if package in sys.modules:
            continue
        stubs[package] = types.ModuleType(package)
        stubs[package + ".models"] = models = types.ModuleType(package + ".models")
        stubs[package].models = models  # type: ignore[attr-defined]
    if "moto.ec2" in stubs:  # parsing checks isinstance() against these two for EC2 tags
        for name, cls in (("core", "TaggedEC2Resource"), ("launch_templates", "LaunchTemplate")):
            module = stubs[f"moto.ec2.models.{name}"] = types.ModuleType(f"moto.ec2.models.{name}")
            setattr(module, cls, type(cls, (), {}))
    if "moto.ssm" in stubs:
        stubs["moto.ssm"].ssm_backends = {}  # type: ignore[attr-defined]  # SSM parameter types
    before = set(sys.modules)
    sys.modules.update(stubs)
    try:
        import moto.cloudformation.parsing  # noqa: F401
    except Exception:  # noqa: BLE001 - a moto that needs more: forget the attempt, import fully
        for name in set(sys.modules) - before:
            del sys.modules[name]
        import moto.cloudformation.parsing  # noqa: F401,F811
        return
    for name, module in stubs.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]


def _strict_cloudformation(unmodelled_resource: Callable[[str], str]) -> None:
    """Register the models defined so far (moto caches its model map) and make a resource type
    that no model covers fail ``CreateStack``/``UpdateStack`` instead of being skipped."""
    _import_cloudformation_lean()
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


def _json_templates_read_as_json() -> None:
    """moto reads every template with PyYAML's pure-Python loader first (~35 ms for an SMR
    stack's 12 KB of JSON, at every CreateStack and UpdateStack); a JSON template is read as
    JSON, as CloudFormation reads it. YAML templates are moto's as before."""
    import json

    from moto.cloudformation.models import Stack

    original = Stack.parse_template

    def parse_template(template: str) -> dict[str, Any]:
        if template.lstrip().startswith("{"):
            try:
                parsed = json.loads(template)
            except ValueError:
                pass
            else:
                if isinstance(parsed, dict):
                    return parsed
        return original(template)

    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign]


def _apply_function_layers() -> None:
    """moto's ``AWS::Lambda::Function`` drops ``Layers`` and ``Architectures`` on create and keeps
    old layers on an update that removes them; the handler would miss its layers, or keep another
    deploy's (and the local stack would miss its architecture check)."""
    from moto.awslambda.models import LambdaFunction, lambda_backends

    original: Any = LambdaFunction.__dict__["create_from_cloudformation_json"].__func__
    original_update: Any = LambdaFunction.__dict__["update_from_cloudformation_json"].__func__

    def create_from_cloudformation_json(cls: type, /, resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        fn = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json.get("Properties", {})
        try:
            if properties.get("Layers"):
                fn.layers = fn._get_layers_data(properties["Layers"])
                check_function_size(fn)
            if properties.get("Architectures"):
                fn.architectures = list(properties["Architectures"])
        except Exception:
            lambda_backends[account_id][region_name].delete_function(fn.function_name)
            raise
        return fn

    def update_from_cloudformation_json(cls: type, /, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str) -> Any:
        fn = original_update(cls, original_resource, new_resource_name, cloudformation_json,
                             account_id, region_name)
        properties = cloudformation_json.get("Properties", {})
        fn.architectures = list(properties.get("Architectures") or ["x86_64"])
        if not properties.get("Layers"):  # AWS removes layers the template no longer lists
            fn.layers = []
        return fn

    setattr(LambdaFunction, "create_from_cloudformation_json",  # noqa: B010 - a patch
            classmethod(create_from_cloudformation_json))
    setattr(LambdaFunction, "update_from_cloudformation_json",  # noqa: B010 - a patch
            classmethod(update_from_cloudformation_json))


# Lambda's quotas on code size (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
# a function's code and layers unzipped, and a zip sent inline (base64 in the request body).
UNZIPPED_LIMIT = 262_144_000
INLINE_REQUEST_LIMIT = 69_905_067  # a 50 MB zip, base64-encoded: what Lambda's error message names


def _unzipped_size(zip_bytes: bytes) -> int:
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        return len(zip_bytes)  # not a zip: the invoke reports that


def _layer_unzipped_size(layer: Any) -> int:
    size = getattr(layer, "_smr_unzipped_size", None)
    if size is None:
        size = _unzipped_size(getattr(layer, "code_bytes", b"") or b"")
        layer._smr_unzipped_size = size
    return int(size)


def _check_inline_zip(content: dict[str, Any], operation: str) -> None:
    from moto.core.exceptions import JsonRESTError

    zip_file = content.get("ZipFile")
    if zip_file is not None and len(zip_file) > INLINE_REQUEST_LIMIT:
        error = JsonRESTError("RequestEntityTooLargeException",
                              f"Request must be smaller than {INLINE_REQUEST_LIMIT} bytes for the "
                              f"{operation} operation")
        error.code = 413
        raise error


def check_function_size(fn: Any, layer_arns: list[str] | None = None) -> None:
    """Raise Lambda's InvalidParameterValueException when ``fn``'s code with its layers (or with
    ``layer_arns``, about to replace them) unzips to more than 250 MB."""
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends[fn.account_id][fn.region]
    arns = layer_arns if layer_arns is not None else [layer["Arn"] for layer in fn.layers or []]
    code = _unzipped_size(getattr(fn, "code_bytes", b"") or b"")
    total = code + sum(_layer_unzipped_size(backend.layers_versions_by_arn(arn)) for arn in arns
                       if backend.layers_versions_by_arn(arn) is not None)
    if code > UNZIPPED_LIMIT:
        raise InvalidParameterValueException(f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes")
    if total > UNZIPPED_LIMIT:
        raise InvalidParameterValueException(
            f"Function code combined with layers exceeds the maximum allowed size of {UNZIPPED_LIMIT} "
            f"bytes. The actual size is {total} bytes.")


def _lambda_code_size_limits() -> None:
    """moto stores code and layers of any size; Lambda refuses what is over its quotas, and so
    must the local stack, or a deploy that works here would fail on AWS."""
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.models import LambdaFunction, LayerVersion

    layer_init = LayerVersion.__init__

    def layer_version_init(self: Any, spec: dict[str, Any], account_id: str, region: str) -> None:
        _check_inline_zip(spec.get("Content") or {}, "PublishLayerVersion")
        layer_init(self, spec, account_id, region)
        if _layer_unzipped_size(self) > UNZIPPED_LIMIT:
            raise InvalidParameterValueException(
                f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes")

    set_code = LambdaFunction._set_function_code
    code_fields = ("code_bytes", "code_size", "code_sha_256", "code_digest")

    def set_function_code(self: Any, updated_spec: dict[str, Any]) -> None:
        updating = hasattr(self, "code_bytes")
        _check_inline_zip(updated_spec, "UpdateFunctionCode" if updating else "CreateFunction")
        before = {name: getattr(self, name) for name in code_fields if hasattr(self, name)}
        zip_before = (self.code or {}).get("ZipFile")
        set_code(self, updated_spec)
        try:
            check_function_size(self)
        except Exception:
            for name, value in before.items():
                setattr(self, name, value)
            if zip_before is not None:
                self.code["ZipFile"] = zip_before
            raise

    update_configuration = LambdaFunction.update_configuration

    def update_configuration_checked(self: Any, config_updates: dict[str, Any]) -> Any:
        if config_updates.get("Layers") is not None:
            check_function_size(self, list(config_updates["Layers"]))
        return update_configuration(self, config_updates)

    setattr(LayerVersion, "__init__", layer_version_init)  # noqa: B010 - a patch
    setattr(LambdaFunction, "_set_function_code", set_function_code)  # noqa: B010 - a patch
    setattr(LambdaFunction, "update_configuration", update_configuration_checked)  # noqa: B010


def _versions_as_lambda_keeps_them() -> None:
    """Published versions as Lambda has them, where moto differs:

    - ``AWS::Lambda::Version`` keeps its ``Description``, its ``Ref`` is the version's ARN and
      ``Fn::GetAtt [.., Version]`` its number (moto has neither);
    - a new version has no event-invoke config of its own (moto's copy shares ``$LATEST``'s;
      Lambda keeps one per qualifier) and keeps its code (moto's shares ``$LATEST``'s dict);
    - ``DeleteFunction`` with a version number deletes that version (moto ignores it), and its
      number is never given to a later version (moto's next number is the count plus one).
    """
    from moto.awslambda.models import LambdaFunction, LambdaStorage, LambdaVersion, lambda_backends

    def create_version(cls: type, /, resource_name: str, cloudformation_json: dict[str, Any],
                       account_id: str, region_name: str, **kwargs: Any) -> Any:
        props = cloudformation_json["Properties"]
        backend = lambda_backends[account_id][region_name]
        fn: Any = backend.publish_version(props["FunctionName"], props.get("Description", ""))
        version: Any = LambdaVersion({"Version": fn.version})  # type: ignore[abstract]
        version.function_arn = fn.function_arn
        return version

    setattr(LambdaVersion, "create_from_cloudformation_json",  # noqa: B010 - a patch
            classmethod(create_version))
    setattr(LambdaVersion, "physical_resource_id",  # noqa: B010 - a patch
            property(lambda self: self.function_arn))
    setattr(LambdaVersion, "has_cfn_attr",  # noqa: B010 - a patch
            classmethod(lambda cls, attr: attr == "Version"))

    def get_cfn_attribute(self: Any, attribute_name: str) -> str:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "Version":
            return str(self.version)
        raise UnformattedGetAttTemplateException()

    setattr(LambdaVersion, "get_cfn_attribute", get_cfn_attribute)  # noqa: B010 - a patch

    original_publish = LambdaStorage.publish_version

    def publish_version(self: LambdaStorage, name_or_arn: str, description: str = "") -> Any:
        name = name_or_arn.split(":")[-1]
        before = list(self._functions.get(name, {}).get("versions", []))
        fn: LambdaFunction | None = original_publish(self, name_or_arn, description)
        if fn is None or any(fn is v for v in before):
            return fn
        fn.event_invoke_config = []
        fn.code = dict(fn.code)  # moto's copy shares the dict a code update changes in place
        # moto numbers a version len(versions) + 1, reusing a deleted one's number; Lambda never does.
        last: dict[str, int] = self.__dict__.setdefault("_smr_last_version", {})
        number = max([last.get(name, 0), *(int(v.version) for v in before)]) + 1
        last[name] = number
        self._arns.pop(fn.function_arn, None)
        fn.set_version(number)
        self._arns[fn.function_arn] = fn
        return fn

    setattr(LambdaStorage, "publish_version", publish_version)  # noqa: B010 - a patch

    original_delete = LambdaStorage.del_function

    def del_function(self: LambdaStorage, name_or_arn: str, qualifier: str | None = None) -> None:
        if qualifier and qualifier.isdigit():
            fn = self.get_function_by_name_or_arn_with_qualifier(name_or_arn, qualifier)
            versions = self._functions[fn.function_name]["versions"]
            versions[:] = [v for v in versions if str(v.version) != qualifier]
            self._arns.pop(fn.function_arn, None)
            return
        original_delete(self, name_or_arn, qualifier)

    setattr(LambdaStorage, "del_function", del_function)  # noqa: B010 - a patch
    _event_invoke_config_per_qualifier()


def _event_invoke_config_per_qualifier() -> None:
    """moto's ``*FunctionEventInvokeConfig`` handlers ignore ``Qualifier``: apply it (the backend
    resolves ``name:version``)."""
    from moto.awslambda.responses import LambdaResponse

    def qualified(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def with_qualifier(self: Any) -> Any:
            qualifier = (self.querystring.get("Qualifier") or [None])[0]
            if not qualifier or qualifier == "$LATEST":
                return handler(self)
            head, name, tail = self.path.rsplit("/", 2)
            self.path = f"{head}/{name}:{qualifier}/{tail}"
            return handler(self)
        return with_qualifier

    for method in ("put_function_event_invoke_config", "get_function_event_invoke_config",
                   "delete_function_event_invoke_config", "update_function_event_invoke_config"):
        setattr(LambdaResponse, method, qualified(getattr(LambdaResponse, method)))


#: resources CloudFormation creates only after the functions they snapshot were updated
_AFTER_FUNCTION_UPDATES = ("AWS::Lambda::Version", "AWS::Lambda::EventInvokeConfig")


def _versions_after_function_updates() -> None:
    """In a stack update moto adds new resources before it modifies changed ones; CloudFormation
    follows the references, so a new ``AWS::Lambda::Version`` of a function changed in the same
    update snapshots the changed function. Add versions (and their invoke configs) last."""
    from moto.cloudformation import parsing

    original = parsing.ResourceMap.update

    def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        resources = template["Resources"]
        late = [name for name, resource in resources.items()
                if resource.get("Type") in _AFTER_FUNCTION_UPDATES and name not in self._resource_json_map]
        if not late:
            original(self, template, parameters)
            return
        original(self, {**template, "Resources": {n: r for n, r in resources.items() if n not in late}},
                 parameters)
        self._template = template
        self._resource_json_map = resources
        for name in late:
            _ = self[name]  # moto creates a resource when it is first looked up

    setattr(parsing.ResourceMap, "update", update)  # noqa: B010 - a patch


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
