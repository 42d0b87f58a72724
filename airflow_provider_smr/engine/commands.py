"""``smr run``, ``smr status`` and ``smr cancel``: the engine from a shell.

``smr run JOB --input URI --output URI`` plans, runs and waits for a job on a deployed stack
(deployed first when missing). ``--local`` starts an embedded local stack for the run; then
``--input`` and ``--output`` may also be local paths (inputs are uploaded, parts downloaded).
``--json`` prints only the result dict (one line) on stdout and no progress. Otherwise progress goes
to stderr: one live bar per phase on a terminal, plain lines (at most one per 10 s) elsewhere.
Errors exit non-zero with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_smr.cli import resume_gc
from airflow_provider_smr.engine import stack_cache
from lambda_handlers.aws_errors import is_not_found
from lambda_handlers.io import dynamodb
from lambda_handlers.options import (
    JobOptions,
    OptionError,
    OptionInfo,
    StackSettings,
    declared,
    declared_values,
)
from lambda_handlers.planning import dynamodb_tables, s3_locations
from lambda_handlers.s3uri import S3Uri, is_s3_uri

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.engine.runner import JobRunner
    from airflow_provider_smr.engine.stack_cache import CachedStack
    from airflow_provider_smr.engine.watch import JobStatus, ProgressTracker

    # A command's function (``args`` -> exit status) and ``JobRunner.wait``'s progress callback.
    Command = Callable[[argparse.Namespace], int]
    OnProgress = Callable[[JobStatus, ProgressTracker, float], None]

log = logging.getLogger("smr")

LOCAL_BUCKET = "smr-local-data"
_NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.+)$")
_NAME_LIKE = re.compile(r"^([^=/\\:]+)=(.+)$")  # NAME=URI with a NAME the grammar refuses
_PYTHON_FLAG = re.compile(r"\b([a-z][a-z0-9_]*)=(True|False)\b")
#: an error that starts with the argument at fault, as preflight and the planner word it
_ARGUMENT_LABEL = re.compile(r"^(input|output) (?=['(])")
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                    "aws_session_token": "testing"}


class CommandError(Exception):
    """A command-line mistake, reported as one line."""


def add_option_flags(parser: Any, cls: type) -> None:
    """One flag per option of a declaration (``--num-reducers`` for ``num_reducers``), with the
    declaration's default and help; each value is checked as the declaration checks it, so a bad
    value is an error that names the flag."""
    for option in declared(cls):
        if option.kind is bool:
            parser.add_argument(option.flag, action=argparse.BooleanOptionalAction,
                                default=option.default, help=option.help)
        elif option.kind is list:
            parser.add_argument(option.flag, action="append", type=_checked(cls, option),
                                default=None, metavar="VALUE", help=option.help + " (repeatable)")
        else:
            parser.add_argument(option.flag, type=_checked(cls, option), default=option.default,
                                choices=option.choices or None, metavar=_metavar(option),
                                help=option.help)


def _metavar(option: OptionInfo) -> str | None:
    if option.choices:
        return None
    return "SIZE" if option.unit == "bytes" else {int: "N", float: "X"}.get(option.kind, "VALUE")


def _checked(cls: type, option: OptionInfo) -> Callable[[str], Any]:
    """argparse's ``type=`` for one option: the value as the declaration reads and checks it
    (one item of a repeatable option)."""
    def convert(text: str) -> Any:
        try:
            value = getattr(cls(**{option.name: [text] if option.kind is list else text}), option.name)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value[0] if option.kind is list else value
    convert.__name__ = option.name  # argparse names the type in its "invalid value" message
    return convert


def register(subparsers: Any) -> None:
    """Add ``run``, ``status`` and ``cancel`` to the ``smr`` command."""
    run = subparsers.add_parser("run", help="run a MapReduce job and wait for it",
                                description="Run a MapReduce job on the stack and wait for its result.")
    run.add_argument("job", metavar="JOB", help="'package.module:attr' or 'path/to/file.py:attr'")
    run.add_argument("--input", action="append", required=True, metavar="[NAME=]URI",
                     help="S3 prefix, key or glob; repeat for several; NAME=URI for named inputs")
    run.add_argument("--output", required=True, metavar="URI", help="S3 prefix for the parts")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="job parameter, read as the job declares it (else a JSON value or a "
                     "string); repeatable")
    run.add_argument("--file", action="append", default=[], metavar="PATH",
                     help="a side file shipped with the job (relative to the current folder), read "
                     "in a task with job_file(NAME); repeatable")
    run.add_argument("--job-id", metavar="ID", help="job id (default: generated)")
    run.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS",
                     help="longest gap between status polls (the first come after tens of "
                          "milliseconds, backing off to this)")
    run.add_argument("--deploy", action="store_true",
                     help="deploy or update the stack first (default: only when it does not exist)")
    add_option_flags(run.add_argument_group("job options"), JobOptions)
    add_option_flags(run.add_argument_group("stack settings (used when the stack is deployed)"),
                     StackSettings)
    run.add_argument("--json", action="store_true",
                     help="print only the result dict as JSON (one line), no progress")
    _add_stack_arguments(run, local=True)
    run.set_defaults(func=run_command)

    status = subparsers.add_parser("status", help="show a job's state and progress")
    status.add_argument("job_id", metavar="JOB_ID")
    status.add_argument("--json", action="store_true", help="print the status dict as JSON")
    _add_stack_arguments(status, local=False)
    status.set_defaults(func=status_command)

    cancel = subparsers.add_parser("cancel", help="cancel a running job (nothing is committed)")
    cancel.add_argument("job_id", metavar="JOB_ID")
    _add_stack_arguments(cancel, local=False)
    cancel.set_defaults(func=cancel_command)


def _add_stack_arguments(parser: argparse.ArgumentParser, local: bool) -> None:
    parser.add_argument("--stack-name", default="smr", metavar="NAME", help="deployed stack to use (default smr)")
    parser.add_argument("--region", help="AWS region (default: from the environment, else us-east-1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", metavar="URL", help="one endpoint for every service (e.g. `smr local up`)")
    if local:
        where.add_argument("--local", action="store_true",
                           help="run on an embedded local stack; --input/--output may be local paths")
        where.add_argument("--inline", action="store_true",
                           help="run in this process, with no stack and no AWS (tests, debugging): "
                           "--input/--output are local paths; the job's own errors are raised")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and full errors")


# -- inputs and outputs --------------------------------------------------------------------------


def parse_inputs(values: list[str]) -> Any:
    """``--input`` values -> a URI, a list of URIs, or a dict of named inputs (not both kinds)."""
    named: dict[str, list[str]] = {}
    plain: list[str] = []
    for value in values:
        m = _NAMED.match(value)
        if m and not is_s3_uri(value):
            named.setdefault(m.group(1), []).append(m.group(2))
        else:
            _check_input_name(value)
            plain.append(value)
    if named and plain:
        raise CommandError("give either unnamed inputs or NAME=URI inputs, not both")
    if named:
        return {k: v[0] if len(v) == 1 else v for k, v in named.items()}
    return plain[0] if len(plain) == 1 else plain


def _check_input_name(value: str) -> None:
    """Refuse ``NAME=URI`` whose NAME is not a valid input name (``argparse.py=path``), unless the
    whole value is a URI or an existing path, saying what to write instead."""
    m = _NAME_LIKE.match(value)
    if m is None or is_s3_uri(value) or dynamodb.is_dynamodb_uri(value) or Path(value).expanduser().exists():
        return
    name, uri = m.groups()
    fixed = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    fixed = fixed if re.match(r"[A-Za-z_]", fixed) else "_" + fixed
    why = "may not contain a dot" if "." in name else "are letters, digits, _ and - (starting with a letter or _)"
    raise CommandError(f"--input {value!r}: input names {why}, got {name!r}; write --input {fixed}={uri}")


def cli_words(text: str) -> str:
    """An error's Python spelling of an option in the CLI's: ``pass overwrite=True`` -> ``pass
    --overwrite`` (``=False``: ``--no-overwrite``), for the options ``smr run`` has flags for, and
    the argument an error starts with (``input 's3://b/x/' matched no objects``) as its flag
    (``--input 's3://b/x/' ...``)."""
    flags = {o.name: o.flag for cls in (JobOptions, StackSettings) for o in declared(cls) if o.kind is bool}

    def flag(m: re.Match[str]) -> str:
        name, value = m.groups()
        if name not in flags:
            return m.group(0)
        return flags[name] if value == "True" else "--no-" + flags[name][2:]
    return _ARGUMENT_LABEL.sub(r"--\1 ", _PYTHON_FLAG.sub(flag, text), count=1)


def _parse_params(values: list[str], as_text: bool = False) -> dict:
    """``--param`` values: text when the job declares its parameters (it reads each as declared),
    else a JSON value or a string."""
    params: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise CommandError(f"--param {value!r}: use KEY=VALUE")
        if as_text:
            params[key] = raw
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _map_uris(spec: Any, fn: Callable[[str, str | None], str]) -> Any:
    """Apply ``fn(uri, input_name)`` to every URI of an input spec, keeping its shape."""
    if isinstance(spec, dict):
        return {k: [fn(u, k) for u in v] if isinstance(v, list) else fn(v, k) for k, v in spec.items()}
    if isinstance(spec, list):
        return [fn(u, None) for u in spec]
    return fn(spec, None)


def upload_local_inputs(s3: Any, spec: Any) -> Any:
    """Upload local files/folders named in ``spec`` to the local stack; return the spec as S3 URIs."""
    counter = iter(range(1_000_000))

    def upload(uri: str, name: str | None) -> str:
        if is_s3_uri(uri) or dynamodb.is_dynamodb_uri(uri):
            return uri
        path = Path(uri).expanduser()
        if not path.exists():
            raise CommandError(f"input {uri!r} is neither an S3 URI nor an existing local path")
        prefix = f"inputs/{name or 'default'}-{next(counter)}/"
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            rel = f.name if path.is_file() else f.relative_to(path).as_posix()
            s3.upload_file(str(f), LOCAL_BUCKET, prefix + rel)
        return str(S3Uri(LOCAL_BUCKET, prefix) if path.is_dir() else S3Uri(LOCAL_BUCKET, prefix + path.name))

    return _map_uris(spec, upload)


def download_output(s3: Any, result: dict, folder: Path, *, overwrite: bool = False,
                    overwrite_name: str = "--overwrite") -> list[str]:
    """Make a local folder hold exactly the committed parts and ``_SUCCESS`` of ``result``: a folder
    holding a committed result is refused unless ``overwrite``; the old output is replaced only
    once every new file is downloaded (see :mod:`airflow_provider_smr.engine.output_folder`)."""
    from airflow_provider_smr.engine.output_folder import replace_output_folder

    return replace_output_folder(folder, lambda staging: download_parts(s3, result, staging),
                                 overwrite=overwrite, overwrite_name=overwrite_name)


def download_parts(s3: Any, result: dict, folder: Path) -> None:
    """Download the committed parts and ``_SUCCESS`` of ``result`` into an (empty) folder."""
    for uri in [*result["parts"], result["manifest"]]:
        part = S3Uri.parse(uri, what="part")
        s3.download_file(part.bucket, part.key, str(folder / part.key.rsplit("/", 1)[-1]))


# -- commands ------------------------------------------------------------------------------------


def main_errors(func: Command) -> Command:
    """Decorator for ``func(args)``: known errors become one line on stderr and exit status 1."""
    def run(args: argparse.Namespace) -> int:
        # Progress lines go to stderr, so stdout stays the result (and --json's last line).
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(message)s")
        quiet = getattr(args, "json", False) and not args.verbose  # --json: the result, no chatter
        for name in ("smr", "airflow_provider_smr"):
            logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
        try:
            return func(args)
        except Exception as exc:  # noqa: BLE001 - the CLI's one place that turns errors into a line
            from airflow_provider_smr.engine.inline import TASK_ATTRIBUTE

            if getattr(exc, TASK_ATTRIBUTE, None):  # --inline: the job's own error, traceback and all
                raise
            text = cli_words(str(exc).strip()) or type(exc).__name__
            if args.verbose:
                log.error("%s", text, exc_info=not _known(exc))
            print(f"smr: error: {type(exc).__name__}: {text.splitlines()[0]}", file=sys.stderr)
            return 1

    return run


def _known(exc: Exception) -> bool:
    return isinstance(exc, (ValueError, RuntimeError, CommandError, LookupError))


@contextlib.contextmanager
def _clients(args: argparse.Namespace) -> Iterator[tuple[AwsClients, bool]]:
    from airflow_provider_smr.engine.aws import AwsClients

    if getattr(args, "local", False):
        from airflow_provider_smr.local import LocalStack

        resume_gc()  # the stack's start and the uploads are no startup
        stack = LocalStack().launch()
        try:
            region = args.region or "us-east-1"
            session = _local_session(region)  # while the server boots
            stack.wait_ready()
            yield AwsClients(session, endpoint_url=stack.endpoint_url, region_name=region), True
        finally:
            stack.stop(wait=False)  # the command ends next: the stack tears itself down
        return
    from airflow_provider_smr.engine.lite_aws import lite_session

    # S3's and Lambda's few calls without botocore where that is certain to be what botocore does
    yield AwsClients(lite_session(args.endpoint_url, args.region), endpoint_url=args.endpoint_url,
                     region_name=args.region), False


LOCAL_SERVICES = ("s3", "cloudformation", "lambda")  # what every `smr run --local` calls


def _local_session(region: str) -> Any:
    """A control session with fake keys whose loader already holds the models of
    :data:`LOCAL_SERVICES` (reading them is most of a client's creation)."""
    from airflow_provider_smr.engine.aws import control_session

    return control_session(preload=LOCAL_SERVICES, region_name=region, **FAKE_CREDENTIALS)


def _runner(clients: AwsClients, stack_name: str, deploy_if_missing: dict | None = None,
            deploy: bool = False, job_inputs: Any = None, job_output: Any = None) -> JobRunner:
    """The runner for ``stack_name``: deployed first when missing (or ``deploy``), updated when its
    role does not grant the job's locations (``job_inputs`` / ``job_output``)."""
    from airflow_provider_smr.deploy import StackNotFoundError, deploy_stack, describe_stack
    from airflow_provider_smr.deploy.stack import missing_grants
    from airflow_provider_smr.engine.runner import JobRunner

    if deploy:
        resume_gc()  # a deploy is no startup
        return JobRunner(clients, deploy_stack(clients, stack_name, **(deploy_if_missing or {})),
                         logger=log)
    try:
        stack = describe_stack(clients, stack_name)
    except StackNotFoundError:
        if deploy_if_missing is None:
            raise
        log.info("stack %s not found: deploying it", stack_name)
        resume_gc()
        stack = deploy_stack(clients, stack_name, **deploy_if_missing)
    else:
        missing = missing_grants(stack, job_inputs, job_output) if deploy_if_missing is not None else []
        if missing and deploy_if_missing is not None:  # exact prefixes: add this job's (they accumulate)
            log.info("stack %s does not grant this job's %s: updating it", stack_name, ", ".join(missing))
            resume_gc()
            stack = deploy_stack(clients, stack_name, **deploy_if_missing)
    return JobRunner(clients, stack, logger=log)


def _cached_runner(clients: AwsClients, stack_name: str, cache_at: str | None, deploy_if_missing: dict | None,
                   deploy: bool = False, job_inputs: Any = None,
                   job_output: Any = None) -> tuple[JobRunner, CachedStack | None]:
    """:func:`_runner`, on the stack's description kept at ``cache_at`` when there is a fresh one
    that grants the job's locations (:mod:`~airflow_provider_smr.engine.stack_cache`); the entry
    used, or None for a fresh description."""
    from airflow_provider_smr.engine.runner import JobRunner

    hit = None if deploy else stack_cache.load(cache_at)
    if hit is not None:
        from airflow_provider_smr.deploy.stack import missing_grants

        if not missing_grants(hit.stack, job_inputs, job_output):
            return JobRunner(clients, hit.stack, logger=log, account_concurrency=hit.account_concurrency), hit
    return _runner(clients, stack_name, deploy_if_missing, deploy=deploy, job_inputs=job_inputs,
                   job_output=job_output), None


def _stack_changed(exc: BaseException) -> bool:
    """``exc`` says a resource of the stack is missing: its work bucket, or a function version
    (an ``Invoke`` that found no such function)."""
    from airflow_provider_smr.engine.submit import FanOutError

    if isinstance(exc, FanOutError):
        return exc.code == "ResourceNotFoundException"
    return is_not_found(exc)


def _abandon(runner: JobRunner) -> None:
    """Cancel the job ``runner``'s failed submit had written, if it wrote one (best effort)."""
    job_id = runner.submitting
    try:
        if job_id is not None and runner.job_exists(job_id):
            runner.cancel(job_id)
    except Exception as exc:  # noqa: BLE001 - e.g. the work bucket is gone: nothing to cancel
        log.debug("job %s left as it was: %s", job_id, exc)


@main_errors
def run_command(args: argparse.Namespace) -> int:
    from airflow_provider_smr import job_files
    from airflow_provider_smr.job import load_job

    job = load_job(args.job)  # fail fast on a bad job, before any stack starts
    if args.file:
        job = job.with_files(args.file)
    job_files.describe(job.files)  # a missing or too large side file: before any stack starts
    inputs = parse_inputs(args.input)
    params = job.resolve_params(_parse_params(args.param, as_text=job.param_decls is not None),
                                interface="--param")
    if getattr(args, "inline", False):
        return _run_inline(args, job, inputs, params)
    if getattr(args, "local", False) and not (is_s3_uri(args.output) or dynamodb.is_dynamodb_uri(args.output)):
        from airflow_provider_smr.engine.output_folder import check_output_folder

        check_output_folder(Path(args.output).expanduser(), overwrite=args.overwrite)
    with _clients(args) as (clients, local):
        output, local_output = args.output, None
        if local:
            clients.s3.create_bucket(Bucket=LOCAL_BUCKET)
            inputs = upload_local_inputs(clients.s3, inputs)
            if not (is_s3_uri(output) or dynamodb.is_dynamodb_uri(output)):
                local_output = Path(output).expanduser()
                output = str(S3Uri(LOCAL_BUCKET, f"outputs/{local_output.name or 'output'}/"))
        elif not (is_s3_uri(output) or dynamodb.is_dynamodb_uri(output)):
            raise CommandError(f"output {output!r} is not an S3 or DynamoDB URI (local paths need --local)")
        options = declared_values(JobOptions, args)
        if not local:  # before any deploy: a mistyped bucket changes no stack
            from airflow_provider_smr.engine.preflight import check_locations

            s3 = clients.s3
            clients.prepare("lambda")  # made while the locations are checked and the job is planned
            check_locations(s3, clients.dynamodb, inputs, output, overwrite=options.overwrite,
                            create_table=options.create_table, own_job=lambda job_id: job_id == args.job_id)
        deploy = {"settings": declared_values(StackSettings, args),
                  "input_buckets": s3_locations(inputs), "output_buckets": s3_locations(output),
                  "tables": dynamodb_tables(inputs, output)}
        # a generated job id on a deployed stack: the description the last run kept (a deploy keeps one)
        cache_at = stack_cache.cache_path(clients, args.stack_name) if not (local or args.job_id) else None
        runner, cached = _cached_runner(clients, args.stack_name, cache_at, deploy, deploy=args.deploy,
                                        job_inputs=inputs, job_output=output)
        job_id = args.job_id
        submit: dict[str, Any] = {"input": inputs, "output": output, "job_params": params, "job_id": args.job_id,
                                  "options": dataclasses.replace(options, overwrite=options.overwrite or local)}
        try:
            try:
                job_id = runner.submit(job, **submit)
            except Exception as exc:
                if not (cached and _stack_changed(exc)):
                    raise
                # the stack changed since it was described (deleted, or its versions collected):
                # what this submit wrote is cancelled, and the job submitted again on a fresh description
                log.info("stack %s changed since it was described (%s): describing it again",
                         args.stack_name, exc)
                _abandon(runner)
                stack_cache.forget(cache_at)
                runner, cached = _cached_runner(clients, args.stack_name, None, deploy, job_inputs=inputs,
                                                job_output=output)
                job_id = runner.submit(job, **submit)
            if not cached or runner.account_concurrency != getattr(cached, "account_concurrency", None):
                stack_cache.save(cache_at, runner.stack, runner.account_concurrency)
            resume_gc()  # submitted: the startup is over, the wait may last hours
            with _progress(args, job_id) as on_progress:
                result = runner.wait(job_id, poll_interval=args.poll_interval, on_progress=on_progress)
        except KeyboardInterrupt:  # Ctrl-C stops the job too: nothing is left running unwatched
            stack_cache.forget(cache_at if cached else None)
            if job_id is not None and runner.job_exists(job_id):
                print(f"smr: interrupted: cancelling job {job_id}", file=sys.stderr)
                runner.cancel(job_id)
            raise
        except BaseException:  # a failed run describes the stack afresh next time
            stack_cache.forget(cache_at if cached else None)
            raise
        if local_output is not None:
            download_output(clients.s3, result, local_output, overwrite=options.overwrite)
            result = {**result, "local_output": str(local_output)}
    _print_result(result, args.json)
    return 0


def _run_inline(args: argparse.Namespace, job: Any, inputs: Any, params: dict) -> int:
    """``smr run --inline``: the job in this process (:mod:`airflow_provider_smr.engine.inline`)."""
    from airflow_provider_smr.engine.inline import run_inline

    resume_gc()

    run = run_inline(job, inputs, args.output, options=declared_values(JobOptions, args),
                     settings=declared_values(StackSettings, args), job_params=params, job_id=args.job_id,
                     overwrite_name="--overwrite")
    _print_result(run.result, args.json)
    return 0


@contextlib.contextmanager
def _progress(args: argparse.Namespace, job_id: str) -> Iterator[OnProgress | None]:
    """How ``run`` shows progress: nothing with ``--json``; live bars per phase when stderr is a
    terminal; else (CI logs, pipes) the runner's plain progress lines, at most one per 10 s."""
    if args.json:
        yield lambda *_: None
        return
    from airflow_provider_smr.engine.progress_bars import PhaseBars, stderr_console

    console = stderr_console()
    if not console.is_terminal:
        yield None
        return
    with PhaseBars(console, job_id) as bars:
        yield bars


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:  # nothing but the result on stdout
        print(json.dumps(result, sort_keys=True))
        return
    c, t = result["counters"], result["timings"]
    print(f"job {result['job_id']} {result['status']}: {c['output_records']} records in "
          f"{len(result['parts'])} parts at {result.get('local_output') or result['output']}")
    print(f"read {c['records_read']} records ({c['bytes_read']} bytes), shuffled {c['shuffle_bytes']} "
          f"bytes, {c['attempts']} task attempts, {t['total_s']:.1f}s, "
          f"~${result['estimated_cost_usd']:.6f} on AWS")
    for group, names in (c.get("user") or {}).items():
        print(f"counters {group}: " + ", ".join(f"{name}={count:,}" for name, count in names.items()))


@main_errors
def status_command(args: argparse.Namespace) -> int:
    with _clients(args) as (clients, _):
        status = _runner(clients, args.stack_name).status(args.job_id)
    if args.json:
        print(json.dumps(status.to_dict(), sort_keys=True))
    else:
        print(f"{args.job_id}: {status.describe()}")
        if status.error:
            print(status.error)
    return 0


@main_errors
def cancel_command(args: argparse.Namespace) -> int:
    with _clients(args) as (clients, _):
        cancelled = _runner(clients, args.stack_name).cancel(args.job_id)
    print(f"{args.job_id}: {'cancelled' if cancelled else 'already committing; not cancelled'}")
    return 0 if cancelled else 1
