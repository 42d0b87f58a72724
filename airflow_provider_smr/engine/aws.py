"""Where the control plane gets its boto3 clients: one small object shared by hook, CLI and deploy.

``SMRHook`` builds it from an Airflow connection (so ``endpoint_url`` in the connection extra points
everything at the local stack); the CLI builds it from a :class:`ControlSession` (botocore's, with
boto3's ``Session`` API for clients, without importing boto3). Clients are created once and reused
(boto3 clients are thread-safe; the fan-out pool shares them).
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import botocore.session
    from botocore.config import Config

# Enough pooled connections for the fan-out and watcher threads.
DEFAULT_MAX_POOL_CONNECTIONS = 64


class ClientSession(Protocol):
    """What :class:`AwsClients` asks of a session: a ``boto3.session.Session`` or a
    :class:`ControlSession`."""

    @property
    def region_name(self) -> str | None: ...

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any: ...


def client_config(overrides: Config | None = None) -> Config:
    """The ``botocore.config.Config`` of every control-plane client, with ``overrides`` (a
    ``Config``: the connection's ``botocore_config``) merged over it."""
    from botocore.config import Config

    config = Config(max_pool_connections=DEFAULT_MAX_POOL_CONNECTIONS,
                    retries={"max_attempts": 5, "mode": "standard"})
    return config if overrides is None else config.merge(overrides)


def control_session(*, preload: Iterable[str] = (), **kwargs: Any) -> ControlSession:
    """A new :class:`ControlSession` (``kwargs`` as ``boto3.session.Session`` takes them) for the
    control plane: its clients parse timestamps with :func:`~lambda_handlers.clock.aws_timestamp`
    (the planner lists every input object: botocore's dateutil parse of each ``LastModified`` was
    most of its time; same datetimes) and its loader is a ``DirectLoader`` (the same models, read
    for less).

    :param preload: services whose models (and botocore's endpoint data) are read now rather
        than by their first client (e.g. while a local stack boots).
    """
    import botocore.session

    from lambda_handlers.clock import aws_timestamp

    core = botocore.session.get_session()
    loader = direct_loader(core.get_config_variable("data_path"))
    core.register_component("data_loader", loader)
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=aws_timestamp)
    session = ControlSession(core, **kwargs)
    if preload:
        for service in preload:  # the loader caches by these exact arguments (as clients pass them)
            for kind in ("service-2", "endpoint-rule-set-1"):
                loader.load_service_model(service, kind, api_version=None)
        loader.load_data("partitions")
        with warnings.catch_warnings():  # botocore's endpoints.json, read once per session
            warnings.simplefilter("ignore", DeprecationWarning)
            core.get_component("endpoint_resolver")
    return session


class ControlSession:
    """``boto3.session.Session``'s client side over a botocore session, without importing boto3
    (~25 ms of every ``smr`` command: ``boto3.compat`` imports ``s3transfer``).

    Credentials resolve as boto3's do (botocore's chain: the keys given, the environment, the
    profile of ``profile_name`` / ``AWS_PROFILE`` in the config and credentials files, SSO,
    container and instance roles), and so does the region. S3 clients have boto3's transfer
    methods (``upload_file``, ``download_file``, ``upload_fileobj``, ``download_fileobj``,
    ``copy``), which import boto3 when first called. No ``resource()``: the control plane only
    uses clients.
    """

    def __init__(self, botocore_session: botocore.session.Session | None = None, *,
                 aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
                 aws_session_token: str | None = None, region_name: str | None = None,
                 profile_name: str | None = None) -> None:
        if botocore_session is None:
            import botocore.session

            botocore_session = botocore.session.get_session()
        self._session = botocore_session
        if profile_name is not None:
            self._session.set_config_variable("profile", profile_name)
        if aws_access_key_id or aws_secret_access_key or aws_session_token:
            self._session.set_credentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
        if region_name is not None:
            self._session.set_config_variable("region", region_name)
        self._session.register("creating-client-class.s3", _inject_transfer_methods,
                               unique_id="smr-s3-transfer-methods")

    def __repr__(self) -> str:
        return f"ControlSession(region_name={self.region_name!r})"

    @property
    def botocore_session(self) -> botocore.session.Session:
        return self._session

    @property
    def region_name(self) -> str | None:
        region: str | None = self._session.get_config_variable("region")
        return region

    @property
    def profile_name(self) -> str:
        return self._session.profile or "default"

    def get_credentials(self) -> Any:
        return self._session.get_credentials()

    def client(self, service_name: str, region_name: str | None = None, api_version: str | None = None,
               use_ssl: bool = True, verify: bool | str | None = None, endpoint_url: str | None = None,
               aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
               aws_session_token: str | None = None, config: Config | None = None) -> Any:
        """A client, as ``boto3.session.Session.client`` makes it."""
        return self._session.create_client(
            service_name, region_name=region_name, api_version=api_version, use_ssl=use_ssl,
            verify=verify, endpoint_url=endpoint_url, aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
            config=config)


TRANSFER_METHODS = ("upload_file", "download_file", "copy", "upload_fileobj", "download_fileobj")


def _transfer_method(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        from boto3.s3 import inject

        return getattr(inject, name)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"boto3's ``S3.Client.{name}`` (boto3 is imported by the first call)."
    return method


def _inject_transfer_methods(class_attributes: dict[str, Any], **_: Any) -> None:
    """botocore's ``creating-client-class.s3`` hook: boto3's transfer methods on S3 clients."""
    for name in TRANSFER_METHODS:
        class_attributes.setdefault(name, _transfer_method(name))


def direct_loader(search_path_string: str | None = None) -> Any:
    """botocore's ``create_loader`` (``AWS_DATA_PATH`` is ``search_path_string``), making a
    :class:`DirectLoader`."""
    import os

    paths = None
    if search_path_string is not None:
        paths = [os.path.expanduser(os.path.expandvars(p)) for p in search_path_string.split(os.pathsep)]
    return _loader_class()(extra_search_paths=paths)


_LOADER_CLASS: type | None = None
# botocore's files this large are read from a parsed copy: its endpoints.json (1.2 MB of JSON,
# ~35 ms to parse, read by every session) and the S3 model (~20 ms to unzip and parse) load in
# ~5 ms from a pickle.
CACHED_MIN_BYTES = 64 * 1024


def cache_root() -> str:
    """SMR's cache folder: ``$SMR_CACHE_DIR`` or ``~/.cache/smr`` (botocore's parsed models, the
    stack descriptions ``smr run`` keeps, the deploy's wheels and layers)."""
    import os

    return os.environ.get("SMR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "smr")


def parsed_cache(path: str, st: Any) -> str | None:
    """Where the parsed copy of botocore's JSON file ``path`` (``os.stat`` result ``st``) is kept:
    ``botocore/`` in SMR's cache (``$SMR_CACHE_DIR`` or ``~/.cache/smr``, as the deploy's wheels
    and layers), named by the file's path, size and modification time (a botocore upgrade makes
    new names); None without a home."""
    import hashlib
    import os

    base = cache_root()
    if not os.path.isabs(base):
        return None
    key = f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{pickle.HIGHEST_PROTOCOL}"
    name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".pickle"
    return os.path.join(base, "botocore", name)


class _DataOnly(pickle.Unpickler):
    """Unpickles plain data only (dicts, lists, strings, numbers): no class or function is ever
    looked up, so a tampered cache file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"not plain data: {module}.{name}")


def _read_parsed(cache: str) -> Any:
    """The parsed copy at ``cache``; None when there is none or it cannot be read."""
    import io

    try:
        with open(cache, "rb") as fp:
            return _DataOnly(io.BytesIO(fp.read())).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return None


def _write_parsed(cache: str, data: Any) -> None:
    """Keep a parsed copy at ``cache``; best effort: a read-only or full disk only means parsing
    again next time."""
    try:
        write_whole(cache, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, pickle.PicklingError):
        pass


def write_whole(path: str, body: bytes) -> None:
    """Write ``body`` to ``path`` in SMR's cache: to a temporary file beside it, then renamed, so
    readers see all or none (the folder is made private to the user when missing)."""
    import os
    import tempfile

    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(body)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for the block (as it was after it): reading one of
    botocore's models makes thousands of dicts at once, and each collection they trigger walks
    every young object (and, now and then, the whole heap) to find no garbage: in a process that
    already holds botocore, 10-14 ms of a model's 1-3 ms read."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _loader_class() -> type:
    """:class:`DirectLoader`, defined on first use (it subclasses botocore's ``Loader``)."""
    global _LOADER_CLASS
    if _LOADER_CLASS is None:
        _LOADER_CLASS = _define_loader()
    return _LOADER_CLASS


def _define_loader() -> type:
    import gzip
    import json
    import os
    import stat

    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import JSONFileLoader, Loader, instance_cache

    class PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]
        """botocore's model files as plain dicts (ordered, as every dict is) rather than
        ``OrderedDict``: botocore builds its own ``OrderedDict`` of members from them, and
        parsing without ``object_pairs_hook`` takes a third of the time (~15 ms a client).
        A large file is read from its :func:`parsed_cache` copy when there is one."""

        def load_file(self, file_path: str) -> Any:
            with _gc_paused():  # a model is ~10,000 new dicts: a collection among them finds nothing
                return self._load_file(file_path)

        def _load_file(self, file_path: str) -> Any:
            for ext, opener in ((".json", open), (".json.gz", gzip.open)):
                path = file_path + ext
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                cache = parsed_cache(path, st) if st.st_size >= CACHED_MIN_BYTES else None
                if cache is not None:
                    data = _read_parsed(cache)
                    if data is not None:
                        return data
                with opener(path, "rb") as fp:
                    data = json.loads(fp.read().decode("utf-8"))
                if cache is not None:
                    _write_parsed(cache, data)
                return data
            return None

    class DirectLoader(Loader):  # type: ignore[misc]
        """botocore's data loader, finding a service's model in that service's folders.

        botocore's ``load_service_model`` first lists every service it knows (a ``listdir`` and
        ``stat`` of each of ~400 folders, once per kind of file: ~20 ms each for ``service-2``,
        ``endpoint-rule-set-1`` and ``paginators-1``) only to check that the name is one;
        here the service's own folders answer that (same latest API version, same extras, same
        files). A name they do not answer goes to botocore, for its own error."""

        FILE_LOADER_CLASS = PlainJSONFileLoader

        @instance_cache  # type: ignore[untyped-decorator]
        def load_service_model(self, service_name: str, type_name: str,
                               api_version: str | None = None) -> Any:
            if not service_name or service_name.startswith(".") or os.sep in service_name or (
                    os.altsep and os.altsep in service_name):
                return super().load_service_model(service_name, type_name, api_version)
            try:
                versions = self.list_api_versions(service_name, type_name)
            except DataNotFoundError:
                return super().load_service_model(service_name, type_name, api_version)
            if api_version is None:
                api_version = max(versions)
            model = self.load_data(os.path.join(service_name, api_version, type_name))
            self._extras_processor.process(model, self._find_extras(service_name, type_name, api_version))
            return model

    return DirectLoader


class AwsClients:
    """Lazily created, cached boto3 clients for one account/region/endpoint.

    :param session: a boto3 session or a :class:`ControlSession`; a :func:`control_session` is
        made when omitted.
    :param endpoint_url: one endpoint for every service (the local stack), or None for AWS.
    :param region_name: AWS region; the session's when omitted.
    :param config: a ``botocore.config.Config`` merged into every client's config.
    :param client_factory: alternative ``(service_name) -> client`` (the hook passes its own so the
        Airflow connection's credentials, endpoint and botocore config apply).
    """

    def __init__(
        self,
        session: ClientSession | None = None,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        config: Config | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self._session = session
        self.endpoint_url = endpoint_url
        self._region_name = region_name
        self._config = config
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            self._session = control_session(region_name=self._region_name)
        return self._session

    @property
    def region_name(self) -> str:
        if self._region_name:
            return self._region_name
        return self.session.region_name or "us-east-1"

    def client(self, service: str) -> Any:
        made = self._clients.get(service)
        if made is not None:
            return made
        with self._lock:  # one client made at a time: a botocore session is not thread-safe
            if service not in self._clients:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def prepare(self, service: str) -> None:
        """Make ``service``'s client on a background thread, while this one waits for other
        requests (reading its model and building its class are CPU work: ~40 ms of a warm
        ``smr run`` for Lambda's). Its first use waits for it; should making it fail there,
        that use makes it again and raises as usual. Call it once the clients the caller needs
        first are made (one client is made at a time)."""
        if service not in self._clients:
            threading.Thread(target=self._prepare, args=(service,), name=f"smr-client-{service}",
                             daemon=True).start()

    def _prepare(self, service: str) -> None:
        with contextlib.suppress(Exception):  # its first use raises it, in the caller's thread
            self.client(service)

    def _make(self, service: str) -> Any:
        if self._client_factory is not None:
            return self._client_factory(service)
        if getattr(self._session, "lite", False):  # a lite_aws.LiteSession: its own S3 and Lambda clients
            return self.session.client(service)
        return self.session.client(service, region_name=self.region_name,
                                   endpoint_url=self.endpoint_url, config=client_config(self._config))

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def cloudformation(self) -> Any:
        return self.client("cloudformation")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def dynamodb(self) -> Any:
        """Made on first use: most jobs only hand it to checks that skip S3 locations."""
        return _OnFirstUse(lambda: self.client("dynamodb"))

    @property
    def sts(self) -> Any:
        return self.client("sts")


class _OnFirstUse:
    """A client whose creation (loading its service model, ~50 ms) waits until it is used."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)
