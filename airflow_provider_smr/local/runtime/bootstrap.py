"""The Lambda runtime inside one warm worker process: load the handler once, then serve invokes.

Run as ``python -I -S bootstrap.py TASK_ROOT SITE_DIR [LAYER_DIR...]`` by the local stack. Isolated
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


def _read_message(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    data = stream.read(size)
    return json.loads(data)


def _write_message(stream, message) -> None:
    data = json.dumps(message).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


class LambdaContext:
    """What Lambda's Python runtime passes as ``context``."""

    def __init__(self, request_id: str, deadline: float, client_context=None):
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

    def filter(self, record):
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

    def write(self, text):
        return sys.stdout.write(text)

    def flush(self):
        sys.stdout.flush()


def _error(exc: BaseException, error_type: str | None = None) -> dict:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": [line for line in traceback.format_list(frames)],
    }


def _load_handler(spec: str):
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


def _invoke(handler, message, request_filter) -> dict:
    request_id = message["request_id"]
    capture = io.StringIO()
    sys.stdout = sys.stderr = capture
    request_filter.request_id = request_id
    context = LambdaContext(request_id, message["deadline"], message.get("client_context"))
    os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{request_id[:8]}-{request_id.replace('-', '')[:24]}"
    try:
        event = json.loads(message["payload"]) if message["payload"] else {}
        result = handler(event, context)
        try:
            reply = {"payload": json.dumps(result)}
        except (TypeError, ValueError) as exc:
            reply = {"error": {"errorMessage": f"Unable to marshal response: {exc}",
                               "errorType": "Runtime.MarshalError", "stackTrace": []}}
    except Exception as exc:
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
    """A spare interpreter imports what nearly every handler imports, before it has a function."""
    try:
        import boto3  # noqa: F401
        import boto3.session  # noqa: F401
        import botocore.client  # noqa: F401
        import botocore.endpoint  # noqa: F401
        import botocore.parsers  # noqa: F401
        import botocore.serialize  # noqa: F401
        import botocore.auth  # noqa: F401
        import botocore.httpsession  # noqa: F401
        import botocore.retries.standard  # noqa: F401
    except ImportError:
        return
    # Creating (and dropping) a client fills the default session's loader cache with the service
    # model and endpoint rules, so the handler's own boto3.client("s3") takes milliseconds.
    for service in ("s3", "lambda"):
        try:
            boto3.client(service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                         aws_access_key_id="preload", aws_secret_access_key="preload")
        except Exception:
            pass


def main() -> None:
    """``bootstrap.py TASK_ROOT SITE_DIR [LAYER...]`` or ``bootstrap.py --spare SITE_DIR``.

    A spare preloads boto3 with only the site folder on its path, then waits for one message
    ``{"task_root", "site_dir", "layer_dirs", "env"}`` that makes it a worker for that function.
    """
    # The control channel is the original stdout; the handler's fd 1 goes to stderr instead.
    control_out = os.fdopen(os.dup(1), "wb")
    control_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(os.fdopen(1, "wb"), line_buffering=True)
    if sys.argv[1] == "--spare":
        site_dir = sys.argv[2]
        sys.path.insert(0, site_dir)
        _preload()
        _write_message(control_out, {"spare": True})
        assignment = _read_message(control_in)
        if assignment is None:
            return
        os.environ.clear()
        os.environ.update(assignment["env"])
        task_root, layer_dirs = assignment["task_root"], assignment["layer_dirs"]
        sys.path[:0] = [task_root, *layer_dirs]
    else:
        task_root, site_dir, *layer_dirs = sys.argv[1:]
        sys.path[:0] = [task_root, *layer_dirs, site_dir]
    os.chdir(task_root)
    request_filter = _configure_logging()
    started = time.time()
    init_capture = io.StringIO()
    sys.stdout = sys.stderr = init_capture
    try:
        handler = _load_handler(os.environ["_HANDLER"])
        hello = {"ready": True}
    except _InitError as exc:
        handler, hello = None, {"init_error": {"errorMessage": str(exc), "errorType": exc.error_type,
                                              "stackTrace": []}}
    except Exception as exc:
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
