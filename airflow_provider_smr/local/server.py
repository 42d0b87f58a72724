"""The local stack's server process: moto for every service, our runtime for Lambda ``Invoke``.

Run as ``python -m airflow_provider_smr.local.server --host H --port P`` (``LocalStack`` and
``smr local up`` do). Prints one line ``SMR-LOCAL-READY <endpoint>`` on stdout once it answers, and
stops on SIGTERM/SIGINT after killing its worker processes. ``--parent-pid`` makes it exit when
the process that started it is gone, so a crashed test run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

READY = "SMR-LOCAL-READY"
#: the HTTP servers ``--http-server`` may name (see :mod:`airflow_provider_smr.local.http_servers`)
HTTP_SERVERS = ("builtin", "cheroot", "waitress")
DEFAULT_ACCOUNT = "123456789012"


def default_workers_per_function() -> int:
    return max(2, min(4, 2 * (os.cpu_count() or 1)))


def default_max_processes(workers_per_function: int) -> int:
    return max(12, 3 * workers_per_function)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_smr.local.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes per function for Event invocations")
    parser.add_argument("--max-concurrency", type=int, default=64,
                        help="stack-wide cap on concurrent invocations")
    parser.add_argument("--max-processes", type=int, default=None,
                        help="cap on warm worker processes kept in total")
    parser.add_argument("--retry-base", type=float, default=0.1,
                        help="delay before the first async retry, doubled for the second (s)")
    parser.add_argument("--no-zygote", action="store_true",
                        help="start every worker as a fresh interpreter (slower cold starts; "
                             "default: fork them from a zygote that preloaded boto3)")
    parser.add_argument("--no-fast-s3", action="store_true",
                        help="let moto answer every S3 request (slower; for comparison)")
    parser.add_argument("--http-server", choices=HTTP_SERVERS, default=HTTP_SERVERS[0],
                        help="the HTTP server in front of the stack: ours, or a maintained one "
                             "to compare with (bench/local_stack.py --only servers)")
    parser.add_argument("--bytecode-cache", default=None, metavar="DIR",
                        help="where the functions' compiled packages are kept between stacks "
                             "(default: lambda-bytecode/ in SMR's cache; '' for none)")
    parser.add_argument("--parent-pid", type=int, default=None)
    return parser.parse_args(argv)


MEMORY_OBJECT_BYTES = 256 << 20


def _bytecode_dir(given: str | None) -> str | None:
    """``--bytecode-cache``, else ``lambda-bytecode/`` in SMR's cache (None: there is no home)."""
    if given is not None:
        return given or None
    from airflow_provider_smr.engine.aws import cache_root

    base = cache_root()
    return os.path.join(base, "lambda-bytecode") if os.path.isabs(base) else None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from airflow_provider_smr.local import moto_internals

    try:
        moto_internals.check_version()
    except moto_internals.UnsupportedMotoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    # CORS headers only matter to browsers; flask-cors costs ~0.2 ms on every request.
    os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")
    # moto keeps an object in memory up to 5 MiB and spools the rest to a temp file, whose writes
    # ran at ~130 MB/s here: shuffle files, parts and their commit copies stay in memory up to this.
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(MEMORY_OBJECT_BYTES))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")

    from airflow_provider_smr.local import cfn, http_servers
    from airflow_provider_smr.local.gateway import Gateway
    from airflow_provider_smr.local.iam import Credentials, Enforcer
    from airflow_provider_smr.local.runtime.invoker import Invoker, RuntimeSettings
    from airflow_provider_smr.local.s3_fast import S3FastPath

    moto_internals.install_patches(cfn.unsupported_resource_message)
    moto_app = moto_internals.build_app()
    root = Path(tempfile.mkdtemp(prefix="smr-local-"))
    # A RequestResponse invoke holds a thread while its function runs and calls S3 through this
    # same server: a pooled server needs a thread per invoke in flight and some for the rest.
    server = http_servers.start(args.http_server, args.host, args.port,
                                lambda e, s: gateway(e, s), threads=args.max_concurrency + 32,
                                memory_body_bytes=MEMORY_OBJECT_BYTES)
    endpoint = f"http://{args.host}:{server.port}"
    workers = args.workers or default_workers_per_function()
    settings = RuntimeSettings(
        account_id=DEFAULT_ACCOUNT, region=args.region, endpoint_url=endpoint,
        workers_per_function=workers, max_concurrency=args.max_concurrency,
        max_processes=args.max_processes or default_max_processes(workers),
        retry_base_s=args.retry_base, zygote=not args.no_zygote,
        bytecode_dir=_bytecode_dir(args.bytecode_cache))
    credentials = Credentials()  # the functions' role keys: the gateway enforces their policies
    invoker = Invoker(settings, root, credentials)
    gateway = Gateway(moto_app, invoker, None if args.no_fast_s3 else S3FastPath(DEFAULT_ACCOUNT),
                      Enforcer(credentials, DEFAULT_ACCOUNT))
    moto_internals.warm_up(moto_app, ("s3", "lambda", "iam", "sts", "logs", "cloudformation", "dynamodb"))

    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    print(f"{READY} {endpoint}", flush=True)
    try:
        while not stop.wait(0.5):
            if args.parent_pid and os.getppid() != args.parent_pid:
                break
    finally:
        server.stop()
        invoker.close()
        shutil.rmtree(root, ignore_errors=True)
        _end_the_rest_of_the_session()
    return 0


def _end_the_rest_of_the_session() -> None:
    """Whatever the server started and still runs (a worker forked while it stopped) ends too:
    a stack that was told to stop without being awaited (``LocalStack.stop(wait=False)``) has
    no one else to see to it."""
    if os.getsid(0) != os.getpid():  # not started in a session of its own (LocalStack does)
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except OSError:
        pass


if __name__ == "__main__":
    code = main()
    # Everything is stopped and cleaned up: skip the interpreter's teardown of moto's thousands of
    # modules and objects (most of a second, which every `smr run --local` would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
