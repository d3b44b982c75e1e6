"""The Kubernetes manifests: each overlay rendered by kustomize, checked as a reviewer would."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kcc_shared.config import Config, ConfigError
from kcc_shared.organisation import load_organisation
from router.model import DEMO_MODEL, RoutingModel

from conftest import unavailable
from tests.deploy.test_dockerfile import dockerfile, substitute

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
NAMESPACES = {"dev": "kcc-dev", "production": "kcc"}
SHIPPED_ORGANISATION = ROOT / "shared" / "src" / "kcc_shared" / "organisation.yaml"
K8S_ORGANISATION = K8S / "base" / "organisation.yaml"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# The oldest Kubernetes these manifests are for (the preStop `sleep` action is on by default
# from 1.30) and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
# Which image holds which `kcc` command group (the Dockerfile targets).
IMAGE_OF_GROUP = {
    "intake": "kcc/intake",
    "backoffice": "kcc/backoffice",
    "router": "kcc/router",
    "sla": "kcc/sla-monitor",
}
GUNICORN_COMMANDS = {("intake", "serve"), ("backoffice", "serve"), ("sla", "serve")}
# These are scaled out by an autoscaler (the issue: intake, router and back office).
AUTOSCALED = {"intake-api", "router", "backoffice-api"}


def _missing_tool(tool: str) -> None:
    unavailable(f"{tool} is not installed")


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _missing_tool("kubectl (kustomize renders the overlays)")
    assert kubectl is not None
    return kubectl


def kustomize(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [_kubectl(), "kustomize", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@functools.cache
def _rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


@dataclass(frozen=True)
class Manifests:
    overlay: str
    docs: tuple[dict[str, Any], ...]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    @property
    def deployments(self) -> list[dict[str, Any]]:
        return self.of("Deployment")

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for deployment in self.deployments:
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                yield deployment, container


@pytest.fixture(params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    return Manifests(request.param, _rendered(request.param))


@pytest.fixture
def production() -> Manifests:
    return Manifests("production", _rendered("production"))


@pytest.fixture
def dev() -> Manifests:
    return Manifests("dev", _rendered("dev"))


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _selected(manifests: Manifests, selector: dict[str, Any]) -> list[str]:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is used here: {selector}"
    return [
        d["metadata"]["name"]
        for d in manifests.deployments
        if _matches(selector["matchLabels"], _pod_labels(d))
    ]


def _command(container: dict[str, Any]) -> tuple[str, ...]:
    return tuple(container["command"]) + tuple(container.get("args", ()))


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def _environment(manifests: Manifests, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, env over it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        if "configMapRef" in source:
            env.update(manifests.named("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(_secret_data(manifests.named("Secret", source["secretRef"]["name"])))
    for variable in container.get("env", ()):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        ref = variable["valueFrom"]
        if "secretKeyRef" in ref:
            secret = manifests.named("Secret", ref["secretKeyRef"]["name"])
            env[variable["name"]] = _secret_data(secret)[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            config_map = manifests.named("ConfigMap", ref["configMapKeyRef"]["name"])
            env[variable["name"]] = config_map["data"][ref["configMapKeyRef"]["key"]]
        else:
            pytest.fail(f"{container['name']}: unexpected env source {ref}")
    return env


def _volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", ())}


def _listening_port(command: tuple[str, ...], env: dict[str, str]) -> int:
    """The port the process binds, read as the code reads it."""
    if command[1:3] in GUNICORN_COMMANDS:
        return int(env["KCC_HTTP_BIND"].rpartition(":")[2])
    return Config.from_env({"KCC_METRICS_PORT": env.get("KCC_METRICS_PORT", "")}).metrics_port


def _container_ports(container: dict[str, Any]) -> dict[str | int, int]:
    """Port names and numbers, each mapped to its number."""
    ports: dict[str | int, int] = {}
    for port in container.get("ports", ()):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


# -- what the code really serves ----------------------------------------------------------------


# Each process's WSGI app, built as its `kcc` command builds it, answers the paths on stdin.
# In a child process: the apps register collectors in prometheus-client's global registry,
# which would leak into the other tests of this session.
_ANSWER_PATHS = """
import json, sys
from kcc_shared.config import Config
from werkzeug.test import Client

config = Config(database_url="sqlite:///:memory:", broker_url="memory://", outbox_relay=False,
                secret_key="k8s-test-" + "x" * 32)

def app(group, command):
    if (group, command) == ("intake", "serve"):
        from intake.app import create_app
        return create_app(config)
    if (group, command) == ("backoffice", "serve"):
        from backoffice.app import create_app
        return create_app(config)
    if (group, command) == ("sla", "serve"):
        from sla_monitor.app import create_app
        return create_app(config)
    # The consumers, the router and the SLA monitor's worker serve kcc_shared.health's app
    # (HealthServer).
    from kcc_shared.health import health_app
    return health_app({})

apps = {}
answers = []
for group, command, path in json.load(sys.stdin):
    if (group, command) not in apps:
        apps[group, command] = app(group, command)
    answers.append([group, command, path, Client(apps[group, command]).get(path).status_code])
print(json.dumps(answers))
"""


def _asked_paths(docs: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(group, command, path) of every probe and scrape path in the manifests."""
    asked = set()
    podmonitor = K8S / "components" / "prometheus-operator" / "podmonitor.yaml"
    scraped = {
        e["path"] for e in yaml.safe_load(podmonitor.read_text())["spec"]["podMetricsEndpoints"]
    }
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        template = doc["spec"]["template"]
        paths = set(scraped)
        paths.add(template["metadata"].get("annotations", {}).get("prometheus.io/path", "/"))
        for container in template["spec"]["containers"]:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if kind in container:
                    paths.add(container[kind]["httpGet"]["path"])
            command = _command(container)
            asked |= {(command[1], command[2], path) for path in paths}
    return asked


@functools.cache
def _statuses() -> dict[tuple[str, str, str], int]:
    asked = sorted(_asked_paths(_rendered("dev") + _rendered("production")))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", _ANSWER_PATHS],
        input=json.dumps(asked),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, f"building the apps failed:\n{done.stderr}"
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    return {(group, command, path): status for group, command, path, status in answers}


def _served(command: tuple[str, ...], path: str) -> bool:
    # 503 is a real endpoint whose checks fail here; 404 means nothing is served there.
    return _statuses()[command[1], command[2], path] != 404


# -- the overlays render and validate -----------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(
    manifests: Manifests, version: str
) -> None:
    problems = []
    for doc in manifests.docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
    assert not problems, f"{manifests.overlay} against Kubernetes {version}:\n" + "\n".join(
        problems
    )
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= {
        d["kind"] for d in manifests.docs
    }


def test_the_strict_validation_refuses_a_misspelt_field(production: Manifests) -> None:
    deployment = production.named("Deployment", "router")
    container = dict(deployment["spec"]["template"]["spec"]["containers"][0])
    container["readinesProbe"] = container.pop("readinessProbe")
    broken = {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {
                **deployment["spec"]["template"],
                "spec": {**deployment["spec"]["template"]["spec"], "containers": [container]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_everything_lands_in_the_overlays_namespace(manifests: Manifests) -> None:
    namespace = NAMESPACES[manifests.overlay]
    (ns,) = manifests.of("Namespace")
    assert ns["metadata"]["name"] == namespace
    # The hardening below is what the "restricted" Pod Security Standard demands: production
    # refuses a pod that loses it, dev (which may host a throwaway broker) warns.
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    if manifests.overlay == "production":
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in manifests.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


# -- the processes --------------------------------------------------------------------------------


def test_every_container_runs_a_real_kcc_command_from_the_matching_image(
    manifests: Manifests,
) -> None:
    from kcc_cli.main import cli

    names = set()
    for _deployment, container in manifests.containers():
        command = _command(container)
        assert command[0] == "kcc", f"{container['name']}: {command}"
        ctx = click.Context(cli)
        found: click.Command | None = cli
        for part in command[1:]:
            assert isinstance(found, click.Group), f"{command}: {part!r} is past a command"
            found = found.get_command(ctx, part)
            assert found is not None, f"{container['name']}: no such command {command}"
        assert not isinstance(found, click.Group), f"{command} is a group, not a command"
        repository, _, tag = container["image"].rpartition(":")
        assert repository.endswith(IMAGE_OF_GROUP[command[1]]), container["image"]
        assert tag == PROJECT_VERSION, container["image"]
        names.add(" ".join(command[1:]))
    # Every process of the system, each in its own Deployment.
    assert names == {
        "intake serve",
        "intake consume",
        "router run",
        "backoffice serve",
        "backoffice consume",
        "sla serve",
        "sla run",
    }


def test_probes_ask_served_endpoints_on_the_port_the_process_listens_on(
    manifests: Manifests,
) -> None:
    for _deployment, container in manifests.containers():
        name = container["name"]
        command = _command(container)
        env = _environment(manifests, container)
        ports = _container_ports(container)
        listening = _listening_port(command, env)
        assert listening in ports.values(), f"{name}: listens on {listening}, exposes {ports}"
        for kind in ("readinessProbe", "livenessProbe"):
            assert kind in container, f"{name} has no {kind}"
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind not in container:
                continue
            probe = container[kind]["httpGet"]
            assert probe["port"] in ports, f"{name}: {kind} port {probe['port']} not exposed"
            assert ports[probe["port"]] == listening, f"{name}: {kind} asks another port"
            assert _served(command, probe["path"]), f"{name}: {kind} asks {probe['path']}: 404"
        # Liveness must not depend on the broker or the database: an outage would restart
        # every pod instead of letting them reconnect.
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name


def test_the_web_services_stay_in_their_service_while_the_broker_is_down(
    manifests: Manifests,
) -> None:
    """Their outbox keeps accepting work in a broker outage (docs/intake.md), so readiness is
    not /readyz; /readyz gates only the start, so a wrong URL stops a rollout."""
    for _deployment, container in manifests.containers():
        if _command(container)[1:3] in GUNICORN_COMMANDS:
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["startupProbe"]["httpGet"]["path"] == "/readyz"


def test_every_container_has_requests_and_limits(manifests: Manifests) -> None:
    for _deployment, container in manifests.containers():
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), f"{container['name']}: {bound}"
            assert _cpu(resources[bound]["cpu"]) > 0
        assert _memory(resources["requests"]["memory"]) <= _memory(resources["limits"]["memory"])
        assert _cpu(resources["requests"]["cpu"]) <= _cpu(resources["limits"]["cpu"])


def test_pods_run_hardened(manifests: Manifests) -> None:
    for deployment, container in manifests.containers():
        name = container["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name  # the image's kcc user
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert context.get("runAsNonRoot", True) is True, name


def test_every_directory_a_process_writes_is_a_writable_empty_dir(manifests: Manifests) -> None:
    for deployment, container in manifests.containers():
        name = container["name"]
        volumes = _volumes(deployment)
        writable = {
            mount["mountPath"]
            for mount in container["volumeMounts"]
            if "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly", False)
        }
        assert "/tmp" in writable, f"{name}: no writable /tmp"
        env = _environment(manifests, container)
        if _command(container)[1:3] in GUNICORN_COMMANDS:
            # gunicorn workers share their metric samples through files here.
            assert "PROMETHEUS_MULTIPROC_DIR" in env, f"{name}: no PROMETHEUS_MULTIPROC_DIR"
        else:
            # One process with the default registry: multiprocess mode would lose its
            # scrape-time collectors (docs/sla.md).
            assert "PROMETHEUS_MULTIPROC_DIR" not in env, name
        for variable in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR", "TMPDIR"):
            if variable in env:
                path = Path(env[variable])
                assert any(path.is_relative_to(m) for m in writable), f"{name}: {variable}"


# -- configuration --------------------------------------------------------------------------------


@functools.cache
def _known_variables() -> frozenset[str]:
    """Config's variables, the gunicorn ones included."""
    return frozenset(env for env, _, _ in Config.describe())


def test_every_kcc_variable_is_a_real_setting(manifests: Manifests) -> None:
    for _deployment, container in manifests.containers():
        env = _environment(manifests, container)
        unknown = {k for k in env if k.startswith("KCC_")} - _known_variables()
        assert not unknown, f"{container['name']}: not settings of the code: {sorted(unknown)}"


def test_every_process_configuration_is_accepted_by_the_code(
    manifests: Manifests, tmp_path: Path
) -> None:
    """Config.from_env on each container's environment, with its ConfigMap volumes written out
    where it mounts them: a bad value, a missing file or a wrong path fails here."""
    for deployment, container in manifests.containers():
        name = container["name"]
        env = _environment(manifests, container)
        volumes = _volumes(deployment)
        for mount in container["volumeMounts"]:
            source = volumes[mount["name"]].get("configMap")
            if source is None:
                continue
            folder = tmp_path / name / mount["mountPath"].lstrip("/")
            folder.mkdir(parents=True)
            for key, text in manifests.named("ConfigMap", source["name"])["data"].items():
                (folder / key).write_text(text)
            env = {
                k: str(folder) + v[len(mount["mountPath"]) :]
                if v.startswith(mount["mountPath"] + "/")
                else v
                for k, v in env.items()
            }
        env = {k: str(_installed(v) or v) for k, v in env.items()}
        try:
            config = Config.from_env(env)
        except ConfigError as exc:
            pytest.fail(f"{manifests.overlay} {name}: {exc}")
        assert config.metrics_host == "0.0.0.0", f"{name}: metrics unreachable from outside"
        assert config.organisation_file is not None, f"{name}: uses the packaged organisation"
        assert config.log_format == "json", name
        if _command(container)[1:3] in GUNICORN_COMMANDS:
            # Workers and threads are checked by Config (threads above the live streams).
            assert (config.http_bind or "").startswith("0.0.0.0:"), name


def test_each_service_has_its_own_database_and_tokens_live_in_one(manifests: Manifests) -> None:
    databases: dict[str, set[str]] = {}
    auth = set()
    for _deployment, container in manifests.containers():
        env = _environment(manifests, container)
        group = _command(container)[1]
        if "KCC_DATABASE_URL" in env:
            databases.setdefault(group, set()).add(env["KCC_DATABASE_URL"])
        if "KCC_AUTH_DATABASE_URL" in env:
            auth.add(env["KCC_AUTH_DATABASE_URL"])
        if _command(container)[1:3] in GUNICORN_COMMANDS:
            # Without it a service would look for tokens in its own database.
            assert "KCC_AUTH_DATABASE_URL" in env, container["name"]
    assert set(databases) == {"intake", "backoffice", "sla"}  # the router keeps no store
    assert all(len(urls) == 1 for urls in databases.values()), databases
    urls = [next(iter(u)) for u in databases.values()]
    assert len(set(urls)) == len(urls), "two services share a database"
    assert len(auth) == 1, auth
    assert not auth & set(urls), "tokens share a service's database"


def test_every_referenced_secret_and_config_map_exists_with_the_key(
    manifests: Manifests,
) -> None:
    present = {(d["kind"], d["metadata"]["name"]) for d in manifests.docs}
    for deployment, container in manifests.containers():
        references: list[tuple[str, str, str | None]] = []
        for source in container.get("envFrom", ()):
            if "configMapRef" in source:
                references.append(("ConfigMap", source["configMapRef"]["name"], None))
            if "secretRef" in source:
                references.append(("Secret", source["secretRef"]["name"], None))
        for variable in container.get("env", ()):
            ref = variable.get("valueFrom", {})
            if "secretKeyRef" in ref:
                key_ref = ref["secretKeyRef"]
                references.append(("Secret", key_ref["name"], key_ref["key"]))
            if "configMapKeyRef" in ref:
                key_ref = ref["configMapKeyRef"]
                references.append(("ConfigMap", key_ref["name"], key_ref["key"]))
        for volume in _volumes(deployment).values():
            if "configMap" in volume:
                references.append(("ConfigMap", volume["configMap"]["name"], None))
            if "secret" in volume:
                references.append(("Secret", volume["secret"]["secretName"], None))
        for kind, name, key in references:
            assert (kind, name) in present, f"{container['name']}: {kind} {name} is missing"
            doc = manifests.named(kind, name)
            if key is not None:
                keys = _secret_data(doc) if kind == "Secret" else doc["data"]
                assert key in keys, f"{container['name']}: {kind} {name} has no key {key}"
        service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        assert ("ServiceAccount", service_account) in present


def test_the_router_decides_with_the_model_its_image_installs(manifests: Manifests) -> None:
    # The organisation file is a ConfigMap, not the packaged one: without KCC_ROUTING_MODEL the
    # router would run on the rules alone (router.model.model_file_for).
    (router,) = [c for d, c in manifests.containers() if d["metadata"]["name"] == "router"]
    path = _environment(manifests, router).get("KCC_ROUTING_MODEL")
    assert path, "the router has no KCC_ROUTING_MODEL"
    installed = _installed(path)
    assert installed is not None, f"{path} is not inside the image's installed packages"
    assert installed.resolve() == DEMO_MODEL.resolve()
    (config_map,) = [
        d for d in manifests.of("ConfigMap") if d["metadata"]["name"].startswith("kcc-organisation")
    ]
    organisation = load_organisation(K8S_ORGANISATION)
    assert config_map["data"]["organisation.yaml"] == K8S_ORGANISATION.read_text()
    RoutingModel.load(installed).check_departments(organisation.departments)


def test_the_organisation_config_map_is_the_shipped_default(manifests: Manifests) -> None:
    shipped = SHIPPED_ORGANISATION.read_text()
    assert K8S_ORGANISATION.read_text() == shipped, (
        "deploy/k8s/base/organisation.yaml differs from the shipped default; copy it again: "
        "cp shared/src/kcc_shared/organisation.yaml deploy/k8s/base/organisation.yaml"
    )
    (config_map,) = [
        d for d in manifests.of("ConfigMap") if d["metadata"]["name"].startswith("kcc-organisation")
    ]
    assert config_map["data"] == {"organisation.yaml": shipped}


# -- scaling and availability ---------------------------------------------------------------------


def test_autoscalers_scale_intake_router_and_backoffice(production: Manifests) -> None:
    targets = {}
    for hpa in production.of("HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        target = production.named("Deployment", spec["scaleTargetRef"]["name"])
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= spec["minReplicas"] < spec["maxReplicas"], hpa["metadata"]["name"]
        # The autoscaler owns the count; a replicas field would reset it on every apply.
        assert "replicas" not in target["spec"], target["metadata"]["name"]
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu"
        # Utilization is a share of the CPU request, which must therefore be set.
        for container in target["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in container["resources"]["requests"]
        targets[target["metadata"]["name"]] = spec
    assert set(targets) == AUTOSCALED


def test_dev_runs_one_of_everything_without_autoscalers(dev: Manifests) -> None:
    assert dev.of("HorizontalPodAutoscaler") == []
    assert {d["metadata"]["name"]: d["spec"].get("replicas") for d in dev.deployments} == {
        d["metadata"]["name"]: 1 for d in dev.deployments
    }


def test_production_has_more_replicas_and_resources_than_dev(
    production: Manifests, dev: Manifests
) -> None:
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in production.of("HorizontalPodAutoscaler")
    }
    small = {c["name"]: c["resources"] for _, c in dev.containers()}
    for deployment, container in production.containers():
        name = deployment["metadata"]["name"]
        replicas = (
            hpas[name]["spec"]["minReplicas"] if name in hpas else deployment["spec"]["replicas"]
        )
        if name != "sla-monitor":
            assert replicas >= 2, f"{name}: one pod is a single point of failure"
        theirs = small[container["name"]]
        for bound in ("requests", "limits"):
            assert _memory(container["resources"][bound]["memory"]) >= _memory(
                theirs[bound]["memory"]
            )
            assert _cpu(container["resources"][bound]["cpu"]) >= _cpu(theirs[bound]["cpu"])
        assert _cpu(container["resources"]["requests"]["cpu"]) > _cpu(theirs["requests"]["cpu"]), (
            name
        )
        assert container["image"].startswith("registry.example.org/"), container["image"]


def test_the_sla_monitor_never_runs_twice(manifests: Manifests) -> None:
    monitor = manifests.named("Deployment", "sla-monitor")
    assert monitor["spec"]["replicas"] == 1
    # A rolling update would run the old and the new one side by side for a while.
    assert monitor["spec"]["strategy"] == {"type": "Recreate"}
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in manifests.of("HorizontalPodAutoscaler")}
    assert "sla-monitor" not in scaled


def test_disruption_budgets_select_pods_and_never_block_a_drain(manifests: Manifests) -> None:
    covered = set()
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in manifests.of("HorizontalPodAutoscaler")}
    for pdb in manifests.of("PodDisruptionBudget"):
        selected = _selected(manifests, pdb["spec"]["selector"])
        assert len(selected) == 1, f"PDB {pdb['metadata']['name']} selects {selected}"
        (name,) = selected
        deployment = manifests.named("Deployment", name)
        fewest = (
            hpas[name]["spec"]["minReplicas"] if name in hpas else deployment["spec"]["replicas"]
        )
        if "maxUnavailable" in pdb["spec"]:
            assert pdb["spec"]["maxUnavailable"] >= 1
        else:
            assert pdb["spec"]["minAvailable"] < fewest, f"{name}: no pod could ever be evicted"
        covered.add(name)
    # Everything but the single SLA monitor, which a budget could only block.
    assert covered == {d["metadata"]["name"] for d in manifests.deployments} - {"sla-monitor"}


def test_services_select_one_deployment_and_target_a_port_it_serves(
    manifests: Manifests,
) -> None:
    exposed = set()
    for service in manifests.of("Service"):
        selected = _selected(manifests, {"matchLabels": service["spec"]["selector"]})
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {selected}"
        deployment = manifests.named("Deployment", selected[0])
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in _container_ports(container), port
        exposed.add(selected[0])
    assert exposed == {"intake-api", "backoffice-api", "sla-web"}


def test_topology_spread_and_deployment_selectors_match_their_own_pods(
    manifests: Manifests,
) -> None:
    for deployment in manifests.deployments:
        labels = _pod_labels(deployment)
        assert _selected(manifests, deployment["spec"]["selector"]) == [
            deployment["metadata"]["name"]
        ]
        for spread in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", ()):
            assert _matches(spread["labelSelector"]["matchLabels"], labels)


# -- metrics --------------------------------------------------------------------------------------


def test_scrape_annotations_point_at_metrics(manifests: Manifests) -> None:
    for deployment, container in manifests.containers():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        port = int(annotations["prometheus.io/port"])
        env = _environment(manifests, container)
        assert port == _listening_port(_command(container), env), container["name"]
        path = annotations["prometheus.io/path"]
        assert _served(_command(container), path), f"{container['name']}: nothing at {path}"


def _relabel(rules: Iterable[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' keep/replace relabelling (anchored regexes), enough for the file below."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and match is None:
            return None
        if action == "drop" and match is not None:
            return None
        if action == "replace" and match is not None:
            replacement = rule.get("replacement", "$1")
            # Prometheus writes groups as $1; Python's expand wants \g<1>.
            labels[rule["target_label"]] = match.expand(re.sub(r"\$(\d+)", r"\\g<\1>", replacement))
        assert action in ("keep", "drop", "replace"), action
    return labels


def test_the_pod_scrape_job_finds_every_metrics_port(production: Manifests) -> None:
    """Debian's promtool is built without Kubernetes discovery, so the job's relabelling is
    replayed here on the meta labels Prometheus would give each rendered pod."""
    config = yaml.safe_load((K8S / "prometheus-kubernetes-pods.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == [NAMESPACES["production"]]
    for deployment, container in production.containers():
        template = deployment["spec"]["template"]
        meta = {
            "__address__": "10.1.2.3:1",
            "__meta_kubernetes_pod_ip": "10.1.2.3",
            "__meta_kubernetes_namespace": deployment["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": deployment["metadata"]["name"] + "-abc",
            "__metrics_path__": "/metrics",
        }
        for key, value in template["metadata"]["labels"].items():
            meta["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        for key, value in template["metadata"]["annotations"].items():
            meta["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        for port in container["ports"]:
            target = _relabel(
                job["relabel_configs"],
                {**meta, "__meta_kubernetes_pod_container_port_number": str(port["containerPort"])},
            )
            assert target is not None, f"{container['name']} is not scraped"
            env = _environment(production, container)
            listening = _listening_port(_command(container), env)
            assert target["__address__"] == f"10.1.2.3:{listening}"
            assert target["__metrics_path__"] == "/metrics"
            name = template["metadata"]["labels"]["app.kubernetes.io/name"]
            assert target["job"] == f"kcc-{name}"
    other = {"__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "other"}
    assert _relabel(job["relabel_configs"], other) is None, "pods of other apps are scraped"


def test_the_prometheus_operator_component_scrapes_each_pod_once(tmp_path: Path) -> None:
    overlay = tmp_path / "with-operator"
    overlay.mkdir()
    # kustomize accepts only relative paths to other kustomizations.
    relative = Path(os.path.relpath(K8S, overlay))
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "kcc",
                "resources": [str(relative / "overlays" / "production")],
                "components": [str(relative / "components" / "prometheus-operator")],
            }
        )
    )
    manifests = Manifests("production+prometheus-operator", tuple(kustomize(overlay)))
    (monitor,) = manifests.of("PodMonitor")
    for doc in manifests.docs:
        if doc["kind"] != "PodMonitor":
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "kcc"
    selected = set(_selected(manifests, monitor["spec"]["selector"]))
    assert selected == {d["metadata"]["name"] for d in manifests.deployments}
    endpoints = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    for deployment, container in manifests.containers():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert not [a for a in annotations if a.startswith("prometheus.io/")], annotations
        names = [p["name"] for p in container["ports"] if p["name"] in endpoints]
        assert len(names) == 1, f"{container['name']}: scraped on {names}"
        port = _container_ports(container)[names[0]]
        env = _environment(manifests, container)
        assert port == _listening_port(_command(container), env)
        path = endpoints[names[0]]["path"]
        assert _served(_command(container), path), f"{container['name']}: nothing at {path}"


# -- the production placeholders ------------------------------------------------------------------


def test_production_placeholders_cannot_reach_anything(production: Manifests) -> None:
    """The committed production Secrets must fail closed if deployed unchanged."""
    for secret in production.of("Secret"):
        for key, value in _secret_data(secret).items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}.{key}"
            if "://" in value:
                host = re.split(r"[:/]", value.split("@", 1)[1])[0]
                assert host.endswith(".invalid"), host  # RFC 2606: never resolves


def test_the_web_services_refuse_the_placeholder_session_key(production: Manifests) -> None:
    from intake.app import create_app

    (web,) = [s for s in production.of("Secret") if s["metadata"]["name"].startswith("kcc-web")]
    key = _secret_data(web)["secret-key"]
    config = Config(
        database_url="sqlite:///:memory:",
        broker_url="memory://",
        outbox_relay=False,
        secret_key=key,
    )
    with pytest.raises(ValueError, match="KCC_SECRET_KEY"):
        create_app(config)


def _documented_overlay() -> str:
    """The "your own overlay" kustomization of docs/kubernetes.md."""
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    (block,) = [b for b in blocks if "kind: Kustomization" in b and "behavior: replace" in b]
    return textwrap.dedent(block)


def test_the_documented_operator_overlay_replaces_secrets_images_and_organisation(
    tmp_path: Path,
) -> None:
    overlay = tmp_path / "gemeente"
    (overlay / "secrets").mkdir(parents=True)
    production = Path(os.path.relpath(K8S / "overlays" / "production", overlay))
    text = _documented_overlay()
    assert "../kcc/deploy/k8s/overlays/production" in text
    (overlay / "kustomization.yaml").write_text(
        text.replace("../kcc/deploy/k8s/overlays/production", str(production))
    )
    real = {
        "broker": "url=amqps://kcc:s3cret@rabbitmq.rabbitmq.svc:5671/kcc",
        "auth-database": "url=postgresql+psycopg://kcc_auth:pw@db.gemeente.example/kcc_auth",
        "intake-database": "url=postgresql+psycopg://kcc_intake:pw@db.gemeente.example/kcc_intake",
        "backoffice-database": (
            "url=postgresql+psycopg://kcc_backoffice:pw@db.gemeente.example/kcc_backoffice"
        ),
        "sla-monitor-database": (
            "url=postgresql+psycopg://kcc_sla_monitor:pw@db.gemeente.example/kcc_sla_monitor"
        ),
        "web": "secret-key=" + "s" * 48,
    }
    for name, line in real.items():
        (overlay / "secrets" / f"{name}.env").write_text(line + "\n")
    organisation = SHIPPED_ORGANISATION.read_text().replace(
        "name: Gemeente Voorbeeldstad", "name: Gemeente Testdorp"
    )
    (overlay / "organisation.yaml").write_text(organisation)

    manifests = Manifests("gemeente", tuple(kustomize(overlay)))

    for doc in manifests.docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)
    values = {v for s in manifests.of("Secret") for v in _secret_data(s).values()}
    assert values == {line.split("=", 1)[1] for line in real.values()}
    (config_map,) = [
        d for d in manifests.of("ConfigMap") if d["metadata"]["name"].startswith("kcc-organisation")
    ]
    assert config_map["data"] == {"organisation.yaml": organisation}
    for deployment, container in manifests.containers():
        env = _environment(manifests, container)
        assert env["KCC_BROKER_URL"] == "amqps://kcc:s3cret@rabbitmq.rabbitmq.svc:5671/kcc"
        assert container["image"].startswith("harbor.gemeente.example/kcc/"), container["image"]
        volumes = _volumes(deployment)
        assert volumes["organisation"]["configMap"]["name"] == config_map["metadata"]["name"]


# -- helpers --------------------------------------------------------------------------------------


def _image_site_packages() -> str:
    """Where the images keep the installed packages: the build stage's virtual environment
    (copied unchanged into the runtime image) for the Python of the base image."""
    venv = dockerfile.env("build")["UV_PROJECT_ENVIRONMENT"]
    base = substitute(dockerfile.args["PYTHON_IMAGE"], dockerfile.args)
    match = re.match(r"python:(\d+\.\d+)\.", base)
    assert match is not None, f"cannot tell the Python version of {base}"
    return f"{venv}/lib/python{match.group(1)}/site-packages/"


def _installed(path: str) -> Path | None:
    """A file of an installed package in the image, found in this checkout's installation of
    the same package; None for any other path."""
    prefix = _image_site_packages()
    if not path.startswith(prefix):
        return None
    package, _, rest = path[len(prefix) :].partition("/")
    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} is not installed"
    assert spec.submodule_search_locations, f"{package} is not a package"
    return Path(next(iter(spec.submodule_search_locations))) / rest


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def _memory(quantity: str | int) -> int:
    match = re.fullmatch(r"(\d+)([KMG]i?)?", str(quantity))
    assert match is not None, f"unexpected memory quantity {quantity!r}"
    return int(match.group(1)) * _MEMORY_UNITS.get(match.group(2) or "", 1)


def test_every_service_with_a_database_migrates_it_before_its_pods_start(
    manifests: Manifests,
) -> None:
    """An init container runs `kcc <service> migrate` on the very database the process uses,
    from the same image and as locked down, so a new release's pod never serves a database
    that is behind (and a rollout keeps the old pods while it cannot migrate)."""
    from kcc_cli.main import cli

    migrating = set()
    for deployment, container in manifests.containers():
        name = deployment["metadata"]["name"]
        group = _command(container)[1]
        inits = deployment["spec"]["template"]["spec"].get("initContainers", [])
        if group == "router":
            assert inits == [], "the router keeps no database"
            continue
        [init] = inits
        assert init["command"] == ["kcc", group, "migrate"], name
        command = cli.get_command(click.Context(cli), group)
        assert isinstance(command, click.Group)
        assert command.get_command(click.Context(command), "migrate") is not None
        assert init["image"] == container["image"], name
        database = {e["name"]: e for e in container["env"]}["KCC_DATABASE_URL"]
        assert {e["name"]: e for e in init["env"]}["KCC_DATABASE_URL"] == database, name
        context = init["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert {"cpu", "memory"} <= set(init["resources"]["limits"]), name
        volumes = _volumes(deployment)
        assert any(
            m["mountPath"] == "/tmp" and "emptyDir" in volumes[m["name"]]
            for m in init["volumeMounts"]
        ), name
        migrating.add(group)
    assert migrating == {"intake", "backoffice", "sla"}


# -- retention (docs/operations.md#retention) ---------------------------------------------------


def test_each_service_store_is_pruned_by_a_hardened_nightly_cron_job(
    manifests: Manifests, tmp_path: Path
) -> None:
    from kcc_cli.main import cli

    # The database each service's own Deployments use is the one its prune job cleans.
    databases = {
        _command(container)[1]: _environment(manifests, container)["KCC_DATABASE_URL"]
        for _deployment, container in manifests.containers()
        if "KCC_DATABASE_URL" in _environment(manifests, container)
    }
    pruned = set()
    for job in manifests.of("CronJob"):
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", job["metadata"]["name"]
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        command = _command(container)
        group = command[1]
        assert command == ("kcc", group, "prune"), command
        found = cli.get_command(click.Context(cli), group)
        assert isinstance(found, click.Group)
        assert found.get_command(click.Context(found), "prune") is not None, command
        repository, _, tag = container["image"].rpartition(":")
        assert repository.endswith(IMAGE_OF_GROUP[group]), container["image"]
        assert tag == PROJECT_VERSION, container["image"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        env = _environment(manifests, container)
        assert env["KCC_DATABASE_URL"] == databases[group], group
        try:
            Config.from_env({k: v for k, v in env.items() if k != "KCC_ORGANISATION_FILE"})
        except ConfigError as exc:
            pytest.fail(f"{manifests.overlay} {job['metadata']['name']}: {exc}")
        pruned.add(group)
    assert pruned == {"intake", "backoffice", "sla"}  # the router keeps no store
