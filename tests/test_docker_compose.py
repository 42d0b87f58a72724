"""docker-compose.yaml and the Dockerfile, checked without a Docker engine.

No Docker runs here, so these tests check what Docker would rely on: both services, their ports and
health checks, that every command they run exists in this project (or in the Airflow image's
Airflow, the version installed here), that smr-local's health path is served by the local stack,
and that the airflow service's environment is the one ``make demo`` uses.
"""

from __future__ import annotations

import json
import shlex
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "apache/airflow:3.3.2"
ENDPOINT = "http://smr-local:4566"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    return [tuple(ln.split(None, 1)) for ln in lines if ln and not ln.startswith("#")]


def command_words(command) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def test_both_services_publish_their_ports(services):
    assert set(services) == {"smr-local", "airflow"}
    assert "4566:4566" in services["smr-local"]["ports"]
    assert "8080:8080" in services["airflow"]["ports"]
    assert services["airflow"]["depends_on"]["smr-local"]["condition"] == "service_healthy"


def test_both_services_have_a_health_check(services):
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert int(check["retries"]) > 0, name


def test_airflow_runs_the_official_image_of_the_installed_version():
    import airflow

    assert IMAGE == f"apache/airflow:{airflow.__version__}"


def test_airflow_service_installs_the_mounted_repo_and_runs_airflow_standalone(services):
    from airflow.cli.cli_parser import get_parser

    airflow_service = services["airflow"]
    assert airflow_service["image"] == IMAGE
    volumes = {v.split(":")[1]: v.split(":")[0] for v in airflow_service["volumes"]}
    assert volumes["/opt/smr"] == "."
    dags = airflow_service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    assert (ROOT / volumes[dags]).resolve() == (ROOT / "dags_examples").resolve()
    words = command_words(airflow_service["command"])
    assert words[:2] == ["bash", "-c"]
    steps = [shlex.split(part) for part in words[2].split("&&")]
    assert steps[0][:2] == ["pip", "install"] and steps[0][-1] == "/opt/smr"
    assert steps[-1][0] == "exec"
    airflow_command = steps[-1][1:]
    assert airflow_command == ["airflow", "standalone"]
    get_parser().parse_args(airflow_command[1:])  # a real Airflow subcommand


def test_airflow_health_check_path_is_served_by_airflow(services):
    from airflow.api_fastapi.core_api.routes.public import public_router

    test = services["airflow"]["healthcheck"]["test"]
    url = next(word for word in test if word.startswith("http"))
    assert urlsplit(url).port == 8080
    assert urlsplit(url).path in {route.path for route in public_router.routes}


def test_dockerfile_builds_from_the_same_image_and_runs_the_compose_command(services):
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", IMAGE)
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd == command_words(services["smr-local"]["command"])
    assert ("EXPOSE", "4566") in steps
    installs = [arg for kind, arg in steps if kind == "RUN" and "pip install" in arg]
    assert installs and "[local]" in installs[0]


def test_smr_local_command_is_an_smr_command_on_the_published_port(services):
    from airflow_provider_smr.cli import build_parser

    words = command_words(services["smr-local"]["command"])
    assert words[0] == "smr"
    args = build_parser().parse_args(words[1:])
    assert (args.command, args.port, args.host) == ("local", 4566, "0.0.0.0")


def health_url(services) -> str:
    test = services["smr-local"]["healthcheck"]["test"]
    script = " ".join(test[1:])
    start = script.index("http://")
    return script[start:].split("'")[0].split('"')[0]


def test_smr_local_health_check_path_is_served_by_the_local_stack(services, aws_endpoint):
    url = urlsplit(health_url(services))
    assert url.port == 4566
    with urllib.request.urlopen(aws_endpoint.rstrip("/") + url.path, timeout=10) as response:
        assert response.status == 200


def test_airflow_environment_is_the_one_make_demo_uses(services, tmp_path):
    from airflow_provider_smr.demo import airflow_env

    demo = airflow_env(tmp_path, ENDPOINT, base={})
    env = {k: str(v) for k, v in services["airflow"]["environment"].items()}
    assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"]) == json.loads(demo["AIRFLOW_CONN_AWS_DEFAULT"])
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AIRFLOW__CORE__LOAD_EXAMPLES",
                 "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"):
        assert env[name] == demo[name], name
    # The stack gets the same fake credentials (its Lambda workers call back into it).
    local_env = {k: str(v) for k, v in services["smr-local"]["environment"].items()}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert local_env[name] == demo[name], name


def test_airflow_connection_points_at_the_smr_local_service(services):
    smr_port = services["smr-local"]["ports"][0].split(":")[-1]
    extra = json.loads(services["airflow"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]
    assert extra["endpoint_url"] == f"http://smr-local:{smr_port}"
