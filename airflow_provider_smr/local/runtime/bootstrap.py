"""The Lambda runtime inside one warm worker process: load the handler once, then serve invokes.

Run as ``python -I -S bootstrap.py TASK_ROOT SITE_DIR [LAYER_DIR...]`` by the local stack, or as a
zygote (``--zygote SITE_DIR FD``) that preloads boto3 once and forks warm-started workers. Isolated
mode and no ``site`` keep the project's virtualenv off ``sys.path``: the handler sees its unzipped
package, the layers, a folder with what Lambda's runtime ships (boto3 and friends) and the standard
library - nothing more. Standard library only: this file is executed, never imported.

Wire protocol on the inherited stdin/stdout (the handler's own prints are captured per invocation):
each message is a 4-byte big-endian length followed by that many bytes of JSON.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import struct
import sys
import time
import traceback

# typing.TYPE_CHECKING without importing typing, which a worker never needs; mypy reads the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from airflow_provider_smr.local.runtime.worker import (
        Hello,
        InvokeReply,
        InvokeRequest,
        LambdaError,
        ZygoteAssignment,
    )

    Handler = Callable[[Any, "LambdaContext"], Any]  # the function's handler(event, context)


def _read_message(stream: BinaryIO) -> InvokeRequest | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    data = stream.read(size)
    return json.loads(data)


def _write_message(stream: BinaryIO, message: Hello | InvokeReply) -> None:
    data = json.dumps(message).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


class LambdaContext:
    """What Lambda's Python runtime passes as ``context``."""

    def __init__(self, request_id: str, deadline: float, client_context: object = None):
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("SMR_LOCAL_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = client_context
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _configure_logging() -> _RequestIdFilter:
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(_StdoutProxy())
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(request_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper())
    return request_filter


class _StdoutProxy:
    """Write to whatever ``sys.stdout`` is at the time (the per-invocation capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _error(exc: BaseException, error_type: str | None = None) -> LambdaError:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": [line for line in traceback.format_list(frames)],
    }


def _load_handler(spec: str) -> Handler:
    module_path, _, func_name = spec.rpartition(".")
    if not module_path or not func_name:
        raise ValueError(f"Bad handler '{spec}': expected 'module.function'")
    try:
        module = __import__(module_path.replace("/", "."), fromlist=[func_name])
    except ImportError as exc:
        raise _InitError(f"Unable to import module '{module_path}': {exc}",
                         "Runtime.ImportModuleError") from None
    except SyntaxError as exc:
        raise _InitError(f"Syntax error in module '{module_path}': {exc}",
                         "Runtime.UserCodeSyntaxError") from None
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise _InitError(f"Handler '{func_name}' missing on module '{module_path}'",
                         "Runtime.HandlerNotFound") from None


class _InitError(Exception):
    def __init__(self, message: str, error_type: str):
        super().__init__(message)
        self.error_type = error_type


def _invoke(handler: Handler, message: InvokeRequest,
            request_filter: _RequestIdFilter) -> InvokeReply:
    request_id = message["request_id"]
    capture = io.StringIO()
    sys.stdout = sys.stderr = capture
    request_filter.request_id = request_id
    context = LambdaContext(request_id, message["deadline"], message.get("client_context"))
    os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{request_id[:8]}-{request_id.replace('-', '')[:24]}"
    reply: InvokeReply
    try:
        event = json.loads(message["payload"]) if message["payload"] else {}
        result = handler(event, context)
        try:
            reply = {"payload": json.dumps(result)}
        except (TypeError, ValueError) as exc:
            reply = {"error": {"errorMessage": f"Unable to marshal response: {exc}",
                               "errorType": "Runtime.MarshalError", "stackTrace": []}}
    except Exception as exc:  # noqa: BLE001 - Lambda reports any exception of the handler
        reply = {"error": _error(exc)}
        capture.write(f"[ERROR] {type(exc).__name__}: {exc}\n"
                      + "".join(traceback.format_exception(exc)))
    except SystemExit as exc:
        reply = {"error": {"errorMessage": f"Runtime exited with error: exit status {exc.code}",
                           "errorType": "Runtime.ExitError", "stackTrace": []}}
        reply["exit"] = True
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    reply["logs"] = capture.getvalue()
    reply["max_rss_kb"] = _peak_rss_kb()
    return reply


def _peak_rss_kb() -> int:
    """Resident high-water mark of this process (ru_maxrss would include the pre-exec parent)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _preload() -> None:
    """The zygote imports what nearly every handler imports, before it has a function."""
    try:
        import boto3  # noqa: F401
        import boto3.session  # noqa: F401
        import botocore.auth  # noqa: F401
        import botocore.client  # noqa: F401
        import botocore.endpoint  # noqa: F401
        import botocore.httpsession  # noqa: F401
        import botocore.loaders
        import botocore.parsers  # noqa: F401
        import botocore.retries.standard  # noqa: F401
        import botocore.serialize  # noqa: F401
        import botocore.session
    except ImportError:
        return
    _share_loader(botocore.loaders, botocore.session)
    # Creating (and dropping) clients fills the shared loader's cache with the service models and
    # endpoint rules, so a handler's own client takes milliseconds, whatever session it uses.
    for service in ("s3", "lambda", "dynamodb"):
        try:
            boto3.client(service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                         aws_access_key_id="preload", aws_secret_access_key="preload")
        except Exception:  # noqa: BLE001 - only a warm-up: the handler makes its own clients
            pass


def _share_loader(loaders: Any, session: Any) -> None:
    """One botocore data loader per search path for the whole process, not one per Session.

    The loader only reads botocore's bundled JSON (its results are already shared by every client
    of a session); sharing it makes ``boto3.session.Session().client(...)`` cheap in forked
    workers, as the zygote has parsed the models once.
    """
    made: dict[str | None, Any] = {}
    create = loaders.create_loader

    def create_loader(search_path_string: str | None = None) -> Any:
        if search_path_string not in made:
            made[search_path_string] = create(search_path_string)
        return made[search_path_string]

    loaders.create_loader = session.create_loader = create_loader


def _zygote(site_dir: str, sock_fd: int) -> ZygoteAssignment:
    """Preload, then fork one worker per request; returns only in a forked child, its assignment.

    Requests arrive on a SOCK_SEQPACKET socket: one JSON message ``{"task_root", "layer_dirs",
    "env"}`` with two file descriptors (the worker's stdin and stdout pipes). The zygote answers
    with the child's pid. Children are reaped by the kernel (SIGCHLD ignored).
    """
    import signal
    import socket

    sys.path.insert(0, site_dir)
    _preload()
    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock.sendall(b"ready")
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            boto3: Any = sys.modules.get("boto3")
            if boto3 is not None:  # the handler's session starts from its own environment
                boto3.DEFAULT_SESSION = None
            os.dup2(fds[0], 0)
            os.dup2(fds[1], 1)
            for fd in fds:
                os.close(fd)
            return json.loads(data)
        for fd in fds:
            os.close(fd)
        sock.sendall(struct.pack(">I", pid))


def main() -> None:
    """``bootstrap.py TASK_ROOT SITE_DIR [LAYER...]`` or ``bootstrap.py --zygote SITE_DIR FD``.

    A zygote preloads boto3 with only the site folder on its path, then forks a worker for each
    ``{"task_root", "layer_dirs", "env"}`` it receives: the child takes that environment and puts
    the function's code and layers in front of its path, as a fresh worker would have them.
    """
    if sys.argv[1] == "--zygote":
        assignment = _zygote(sys.argv[2], int(sys.argv[3]))
        os.environ.clear()
        os.environ.update(assignment["env"])
        task_root, layer_dirs = assignment["task_root"], assignment["layer_dirs"]
        sys.path[:0] = [task_root, *layer_dirs]
    else:
        task_root, site_dir, *layer_dirs = sys.argv[1:]
        sys.path[:0] = [task_root, *layer_dirs, site_dir]
    # The control channel is the original stdout; the handler's fd 1 goes to stderr instead.
    control_out = os.fdopen(os.dup(1), "wb")
    control_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # typeshed calls sys.__stdout__ Final; here it is the handler's fd 1, for code that restores it
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(  # type: ignore[misc]
        os.fdopen(1, "wb"), line_buffering=True)
    os.chdir(task_root)
    request_filter = _configure_logging()
    started = time.time()
    init_capture = io.StringIO()
    sys.stdout = sys.stderr = init_capture
    handler: Handler | None
    hello: Hello
    try:
        handler = _load_handler(os.environ["_HANDLER"])
        hello = {"ready": True}
    except _InitError as exc:
        handler, hello = None, {"init_error": {"errorMessage": str(exc), "errorType": exc.error_type,
                                              "stackTrace": []}}
    except Exception as exc:  # noqa: BLE001 - any failure to load the handler is an init error
        handler, hello = None, {"init_error": _error(exc, "Runtime.Unknown")}
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    hello["init_ms"] = (time.time() - started) * 1000
    hello["logs"] = init_capture.getvalue()
    _write_message(control_out, hello)
    if handler is None:
        return
    while True:
        message = _read_message(control_in)
        if message is None:
            return
        reply = _invoke(handler, message, request_filter)
        _write_message(control_out, reply)
        if reply.get("exit"):
            return


if __name__ == "__main__":
    main()
