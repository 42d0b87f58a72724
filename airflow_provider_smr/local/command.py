"""``smr local up``: run the local stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading


def register(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser("local", help="the local stack (AWS without AWS)")
    sub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="serve S3, Lambda (executed for real), IAM, STS, "
                                   "CloudFormation, DynamoDB and CloudWatch Logs on one endpoint")
    up.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    up.add_argument("--port", type=int, default=4566, help="TCP port, 0 = any free (default %(default)s)")
    up.add_argument("--workers", type=int, default=None,
                    help="warm worker processes per function for Event invocations (default 2-4)")
    up.add_argument("--max-concurrency", type=int, default=64,
                    help="stack-wide cap on concurrent invocations (default %(default)s)")
    up.add_argument("--region", default="us-east-1", help="region to emulate (default %(default)s)")
    up.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    from airflow_provider_smr.local.stack import LocalStack

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack = LocalStack(host=args.host, port=args.port, workers=args.workers,
                       max_concurrency=args.max_concurrency, region=args.region)
    try:
        with stack:
            print(f"local stack listening on {stack.endpoint_url}")
            print("export these to use it:")
            for key, value in stack.env.items():
                print(f"  export {key}={value}")
            print("Ctrl-C to stop.", flush=True)
            try:
                while not stop.wait(0.5):
                    if not stack.running():
                        print("local stack server exited unexpectedly")
                        return 1
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("local stack stopped.")
    return 0
