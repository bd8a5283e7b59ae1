"""The deployment files agree with Ray's schemas and with the code they start.

No Docker engine and no cloud account are needed: ``ray_config.yaml`` is checked against Ray's own
``ray-schema.json`` and ``validate_config``, ``serve_config.yaml`` against ``ServeDeploySchema``,
``docker-compose.yml`` and the ``Dockerfile`` against what the code expects (settings names, engine
addresses, entry points). Every check is a function that raises on a bad file; the ``*_rejects_*`` tests
feed it broken copies so that a check that cannot fail would be noticed.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import ray.autoscaler
from ray.autoscaler._private import util as autoscaler_util
from ray.serve import schema as serve_schema
from ray.serve.config import AutoscalingConfig

from cluster.ops.node_failure import NODE_FAILURE_DETECTION
from cluster.stores.clickhouse import parse_http_dsn
from cluster.stores.pattern_layout import KATO, listpack_entries_for
from schema.config import ServerDefaults
from schema.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KATO_NAME = re.compile(r"\bKATO_[A-Z0-9_]+")
SERVE_DEPLOY = re.compile(r"serve deploy ([^\s;&|'\"]+)")
SERVE_MODULE = "serve_app.deployment"
# Each Ray node writes the HAProxy wrapper (README "Deployment": HAProxy's pages off unless asked) before `ray start`.
HAPROXY_WRAPPER = re.compile(r"python -m cluster\.ops\.ingress haproxy-wrapper \S+.*?\bray start\b", re.S)
HAPROXY_BINARY = "RAY_SERVE_HAPROXY_BINARY_PATH"


# ---------------------------------------------------------------------------------------------- helpers


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name looked up: the names a ``from_env`` reads."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_env_names() -> set[str]:
    env = _RecordingEnv()
    Settings.from_env(env)
    return env.seen


def server_default_env_names() -> set[str]:
    env = _RecordingEnv()
    ServerDefaults.from_env(env)
    return env.seen


def load_yaml(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def strings(node: Any) -> Iterator[str]:
    """Every string value (and mapping key) in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def check_kato_names(names: set[str], where: str) -> None:
    unknown = sorted(names - settings_env_names())
    assert not unknown, f"{where} uses {unknown}, which are not KATO_* settings ({sorted(settings_env_names())})"


def command_text(command: Any) -> str:
    return " ".join(command) if isinstance(command, list) else str(command or "")


# ---------------------------------------------------------------------------------------------- ray_config.yaml


def ray_schema() -> dict[str, Any]:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def check_ray_config(config: dict[str, Any]) -> None:
    jsonschema.validate(config, ray_schema())
    validate = getattr(autoscaler_util, "validate_config", None)
    if validate is not None:  # what `ray up` runs, after filling in the provider's defaults
        validate(autoscaler_util.prepare_config(copy.deepcopy(config)))

    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    workers = [t for name, t in node_types.items() if name != config["head_node_type"]]
    assert workers, "a worker node type is needed for autoscaling"
    for worker in workers:
        assert {"min_workers", "max_workers", "resources"} <= set(worker)
        assert 0 <= worker["min_workers"] <= worker["max_workers"] <= config["max_workers"]

    # The repository is mounted and installed on every node.
    mounts = {os.path.normpath(remote): (ROOT / local).resolve() for remote, local in config["file_mounts"].items()}
    repo_mounts = [remote for remote, local in mounts.items() if (local / "pyproject.toml").exists()]
    assert repo_mounts, "file_mounts must copy the repository (a directory with pyproject.toml)"
    setup = " ; ".join(config["setup_commands"])
    assert any(re.search(rf"pip install [^;&|]*{re.escape(m)}(\s|$|;)", setup) for m in repo_mounts), setup

    # Ray first, then the Serve app from the mounted serve_config.yaml; engines in the nodes' environment.
    head = config["head_start_ray_commands"]
    starts = [i for i, c in enumerate(head) if "ray start --head" in c]
    deploys = [i for i, c in enumerate(head) if SERVE_DEPLOY.search(c)]
    assert starts and deploys and starts[0] < deploys[0], "serve deploy must follow ray start --head"
    target = SERVE_DEPLOY.search(head[deploys[0]]).group(1)
    assert Path(target).name == "serve_config.yaml"
    assert os.path.normpath(str(Path(target).parent)) in repo_mounts, f"{target} is not in the mounted repository"
    every = " ; ".join(config["setup_commands"] + head + config["worker_start_ray_commands"])
    check_kato_names(set(KATO_NAME.findall(every)), "ray_config.yaml")
    for name in ("KATO_REDIS", "KATO_STORE"):
        assert re.search(rf"export {name}=\S+", setup), f"{name} is not set on the nodes"
    head_port = re.search(r"ray start --head\b.*?--port=(\d+)", " ".join(head)).group(1)
    assert any(f"--address=$RAY_HEAD_IP:{head_port}" in c for c in config["worker_start_ray_commands"])
    assert re.search(rf"export {HAPROXY_BINARY}=\S+", setup), f"{HAPROXY_BINARY} is not set on the nodes"
    for commands in (head, config["worker_start_ray_commands"]):
        assert HAPROXY_WRAPPER.search(" ; ".join(commands)), "a node starts Ray without writing the HAProxy wrapper"
    system = re.search(r"ray start --head\b.*?--system-config='([^']*)'", " ".join(head))
    assert system, "the head must tune Ray's node-failure detection"
    assert json.loads(system.group(1)) == NODE_FAILURE_DETECTION


def test_ray_config_is_valid():
    assert hasattr(autoscaler_util, "validate_config"), "this Ray has no validate_config; only the schema is checked"
    check_ray_config(load_yaml("ray_config.yaml"))


def _ray_bad_key(c):
    c["max_worker"] = c.pop("max_workers")


def _ray_no_resources(c):
    del c["available_node_types"]["ray.worker.default"]["resources"]


def _ray_min_over_max(c):
    c["available_node_types"]["ray.worker.default"]["min_workers"] = c["max_workers"] + 1


def _ray_deploy_first(c):
    c["head_start_ray_commands"].reverse()


def _ray_setting_typo(c):
    c["setup_commands"] = [s.replace("KATO_REDIS=", "KATO_REDDIS=") for s in c["setup_commands"]]


def _ray_no_install(c):
    c["setup_commands"] = [s for s in c["setup_commands"] if "kato-cluster" not in s]


def _ray_no_haproxy_wrapper(c):
    c["worker_start_ray_commands"] = [s.replace("haproxy-wrapper", "") for s in c["worker_start_ray_commands"]]


@pytest.mark.parametrize("mutate", [_ray_bad_key, _ray_no_resources, _ray_min_over_max, _ray_deploy_first,
                                    _ray_setting_typo, _ray_no_install, _ray_no_haproxy_wrapper])
def test_ray_config_check_rejects_broken_copies(mutate: Callable[[dict], None]):
    config = load_yaml("ray_config.yaml")
    mutate(config)
    with pytest.raises((AssertionError, jsonschema.ValidationError, ValueError, KeyError)):
        check_ray_config(config)


# ---------------------------------------------------------------------------------------------- serve_config.yaml


def _unknown_keys(data: Mapping[str, Any], model: Any, where: str) -> list[str]:
    """Pydantic ignores unknown keys here, so a misspelt option would be dropped silently."""
    return [f"{where}.{key}" for key in data if key not in model.model_fields]


def check_serve_config(config: dict[str, Any]) -> None:
    serve_schema.ServeDeploySchema.model_validate(config)
    unknown = _unknown_keys(config, serve_schema.ServeDeploySchema, "")
    unknown += _unknown_keys(config.get("http_options", {}), serve_schema.HTTPOptionsSchema, "http_options")

    for app in config["applications"]:
        unknown += _unknown_keys(app, serve_schema.ServeApplicationSchema, app["name"])
        module_name, _, attr = app["import_path"].partition(":")
        module = importlib.import_module(module_name)
        builder = getattr(module, attr)  # resolved, never called: it would start shard actors
        assert callable(builder)
        inspect.signature(builder).bind(app.get("args", {}))

        int_fields = {f for f, v in Settings().as_dict().items() if isinstance(v, int)}
        for key, value in app.get("args", {}).items():
            assert key in Settings.__dataclass_fields__, f"args.{key} is not a Settings field"
            if key in int_fields:
                int(value)

        env_vars = app.get("runtime_env", {}).get("env_vars", {})
        kato = {k for k in env_vars if k.startswith("KATO_")}
        check_kato_names(kato, "runtime_env.env_vars")
        assert not kato & {"KATO_REDIS", "KATO_STORE"}, "engine addresses belong to the nodes' environment"
        others = set(env_vars) - kato
        unread = others - server_default_env_names()
        assert not unread, f"not read by ServerDefaults.from_env: {unread}"
        defaults = ServerDefaults.from_env(env_vars)  # casts every value
        if "STM_MODE" in env_vars:
            assert defaults.stm_mode == env_vars["STM_MODE"], "an unknown STM_MODE silently becomes CLEAR"

        defined = {v.name for v in vars(module).values() if isinstance(v, serve_schema_deployment_type())}
        assert defined, f"{module_name} defines no Serve deployment"
        for deployment in app.get("deployments", []):
            assert deployment["name"] in defined, f"deployment {deployment['name']!r} is not one of {defined}"
            unknown += _unknown_keys(deployment, serve_schema.DeploymentSchema, deployment["name"])
            autoscaling = deployment.get("autoscaling_config")
            if autoscaling is not None:  # ServeDeploySchema keeps it as a plain dict: validate it here
                unknown += _unknown_keys(autoscaling, AutoscalingConfig, "autoscaling_config")
                AutoscalingConfig.model_validate(autoscaling)
        assert not unknown, f"unknown keys: {unknown}"


def serve_schema_deployment_type() -> type:
    from ray.serve import Deployment

    return Deployment


def test_serve_config_is_valid():
    check_serve_config(load_yaml("serve_config.yaml"))


def test_serve_config_scales_the_ingress_deployment():
    from serve_app import deployment as serve_deployment

    (app,) = load_yaml("serve_config.yaml")["applications"]
    assert app["import_path"] == f"{SERVE_MODULE}:app_builder" and app["route_prefix"] == "/"
    (ingress,) = [d for d in app["deployments"] if d["name"] == serve_deployment.KatoIngress.name]
    autoscaling = ingress["autoscaling_config"]
    assert {"min_replicas", "max_replicas", "target_ongoing_requests"} <= set(autoscaling)
    assert 1 <= autoscaling["min_replicas"] <= autoscaling["max_replicas"]
    assert autoscaling["target_ongoing_requests"] > 0


def _serve_bad_import(c):
    c["applications"][0]["import_path"] = f"{SERVE_MODULE}:app_bulider"


def _serve_bad_module(c):
    c["applications"][0]["import_path"] = "serve_app.deploy:app_builder"


def _serve_bad_deployment(c):
    c["applications"][0]["deployments"][0]["name"] = "KatoIngres"


def _serve_bad_autoscaling_key(c):
    c["applications"][0]["deployments"][0]["autoscaling_config"]["target_num_ongoing_requests_per_replica"] = 2


def _serve_bad_arg(c):
    c["applications"][0]["args"]["shard"] = 2


def _serve_bad_env(c):
    c["applications"][0]["runtime_env"]["env_vars"]["RECALL_TRESHOLD"] = "0.2"


def _serve_bad_stm_mode(c):
    c["applications"][0]["runtime_env"]["env_vars"]["STM_MODE"] = "ROLLLING"


def _serve_min_over_max(c):
    autoscaling = c["applications"][0]["deployments"][0]["autoscaling_config"]
    autoscaling["min_replicas"] = autoscaling["max_replicas"] + 1


@pytest.mark.parametrize("mutate", [_serve_bad_import, _serve_bad_module, _serve_bad_deployment,
                                    _serve_bad_autoscaling_key, _serve_bad_arg, _serve_bad_env,
                                    _serve_bad_stm_mode, _serve_min_over_max])
def test_serve_config_check_rejects_broken_copies(mutate: Callable[[dict], None]):
    config = load_yaml("serve_config.yaml")
    mutate(config)
    with pytest.raises((AssertionError, ValueError, ImportError, AttributeError)):
        check_serve_config(config)


# ---------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def check_dockerfile(text: str, dockerignore: str) -> None:
    instructions = dockerfile_instructions(text)
    assert instructions[0] == ("FROM", "python:3.11-slim"), instructions[0]

    project = pyproject()
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = ["pyproject.toml", project["project"]["readme"], "serve_config.yaml", *packages]
    copied = {Path(src).name for op, args in instructions if op == "COPY" for src in exec_form(args)[:-1]}
    assert copied == {"."} or set(needed) <= copied, f"not copied into the image: {set(needed) - copied}"
    ignored = [p.strip() for p in dockerignore.splitlines() if p.strip() and not p.startswith("#")]
    for name in needed:
        assert not any(fnmatch.fnmatch(name, p.removeprefix("**/")) for p in ignored), f".dockerignore drops {name}"

    runs = " ; ".join(args for op, args in instructions if op == "RUN")
    assert re.search(r"pip install (--?[\w-]+ )*\.(\s|$|;)", runs), "the project is not pip-installed"

    workdir = [args for op, args in instructions if op == "WORKDIR"][-1]
    assert workdir.startswith("/")
    entry = [exec_form(args) for op, args in instructions if op in ("ENTRYPOINT", "CMD")][0]
    scripts = project["project"]["scripts"]
    if entry[0] in scripts:
        module_name, _, attr = scripts[entry[0]].partition(":")
        assert callable(getattr(importlib.import_module(module_name), attr))
    else:
        assert entry[:2] in (["python", "-m"], ["python3", "-m"]), f"{entry[0]} is neither a console script nor python"
        assert importlib.util.find_spec(entry[2]) is not None, f"no module {entry[2]}"


def test_dockerfile_installs_the_project():
    check_dockerfile((ROOT / "Dockerfile").read_text(), (ROOT / ".dockerignore").read_text())


@pytest.mark.parametrize("old, new", [
    ('"kato-cluster", "up"', '"kato-clusterr", "up"'),
    ("pip install --no-deps .", "pip install --no-deps kato-cluster"),
    ("FROM python:3.11-slim", "FROM python:3.12"),
    ("COPY serve_app ./serve_app\n", ""),
    ("CMD [", 'CMD ["python", "-m", "cluster.nope"]\n#'),
])
def test_dockerfile_check_rejects_broken_copies(old: str, new: str):
    text = (ROOT / "Dockerfile").read_text()
    assert old in text
    with pytest.raises((AssertionError, ModuleNotFoundError)):
        check_dockerfile(text.replace(old, new), (ROOT / ".dockerignore").read_text())


def test_dockerignore_check_rejects_dropping_a_package():
    with pytest.raises(AssertionError):
        check_dockerfile((ROOT / "Dockerfile").read_text(), (ROOT / ".dockerignore").read_text() + "\ncluster\n")


# ---------------------------------------------------------------------------------------------- docker-compose.yml


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's interpolation with an empty shell environment: ``${X:-default}`` -> default, ``$$`` -> ``$``."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value.replace("$$", "\0")).replace("\0", "$")


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def service_with_image(services: Mapping[str, Any], prefix: str) -> str:
    (name,) = [n for n, s in services.items() if str(s.get("image", "")).startswith(prefix)]
    return name


def check_compose(compose: dict[str, Any], serve_config: dict[str, Any], dockerfile: str) -> None:
    services = compose["services"]
    assert {"clickhouse", "redis", "ray-head", "ray-worker"} <= set(services)

    for text in strings(compose):  # a single `$` is interpolated by compose, shell variables need `$$`
        bare = _INTERPOLATION.sub("", text.replace("$$", ""))
        assert "$" not in bare, f"unescaped $ in {text!r}"
    check_kato_names({n for text in strings(compose) for n in KATO_NAME.findall(text)}, "docker-compose.yml")

    # Engines: the head's settings point at the compose services.
    head, worker = services["ray-head"], services["ray-worker"]
    env = environment(head)
    clickhouse = service_with_image(services, "clickhouse/clickhouse-server")
    dsn = parse_http_dsn(env["KATO_STORE"])
    assert (dsn.host, dsn.port, dsn.secure) == (clickhouse, 8123, False), env["KATO_STORE"]
    ch_env = environment(services[clickhouse])
    assert (dsn.username, dsn.password) == (ch_env.get("CLICKHOUSE_USER", "default"),
                                            ch_env.get("CLICKHOUSE_PASSWORD", ""))
    redis_name = service_with_image(services, "redis")
    redis_url = urlparse(env["KATO_REDIS"])
    assert (redis_url.scheme, redis_url.hostname, redis_url.port or 6379) == ("redis", redis_name, 6379), \
        env["KATO_REDIS"]
    redis_cmd = command_text(services[redis_name].get("command"))
    assert re.search(r"--appendonly\s+yes", redis_cmd), "redis must run with --appendonly yes"
    listpack = re.search(r"--hash-max-listpack-entries\s+(\d+)", redis_cmd)
    assert (int(listpack.group(1)) if listpack else None) == listpack_entries_for(
        env.get("KATO_REDIS_LAYOUT", KATO)), "redis must be configured for the deployment's layout"
    assert env == environment(worker), "head and workers must share the KATO_* settings"
    assert all(int(env[k]) >= 1 for k in ("KATO_SHARDS",) if k in env)

    # Ray: the head deploys the Serve config the image contains; workers join the head's GCS port.
    head_cmd = command_text(head["command"])
    assert re.search(r"ray start --head\b[^\n]*--block", head_cmd)
    target = SERVE_DEPLOY.search(head_cmd).group(1)
    instructions = dockerfile_instructions(dockerfile)
    workdir = [args for op, args in instructions if op == "WORKDIR"][-1]
    copied = {src for op, args in instructions if op == "COPY" for src in exec_form(args)[:-1]}
    assert target == f"{workdir}/serve_config.yaml" and "serve_config.yaml" in copied, target
    gcs_port = re.search(r"ray start --head\b[^\n]*--port=(\d+)", head_cmd).group(1)
    assert f"--address=ray-head:{gcs_port}" in command_text(worker["command"]), "workers must join the head's GCS"
    for node in (head, worker):
        assert HAPROXY_BINARY in environment(node) and HAPROXY_WRAPPER.search(command_text(node["command"])), \
            "a node starts Ray without the HAProxy wrapper"
    assert worker["deploy"]["replicas"] >= 1
    for name in ("ray-head", "ray-worker"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()

    http_port = serve_config["http_options"]["port"]
    assert f"http://localhost:{http_port}/health" in command_text(head["healthcheck"]["test"])
    assert any(str(p).endswith(f":{http_port}") for p in head["ports"]), "the Serve port is not published"

    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, Mapping) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
        depends = service.get("depends_on", {})
        assert isinstance(depends, Mapping), f"{name}: depends_on needs conditions"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on an undefined service {dependency}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, Mapping) else str(volume).split(":")[0]
            if not source.startswith(("/", ".", "~")):
                assert source in (compose.get("volumes") or {}), f"volume {source} of {name} is not declared"
    assert any(str(v).endswith(":/var/lib/clickhouse") for v in services[clickhouse].get("volumes", []))
    assert any(str(v).endswith(":/data") for v in services[redis_name].get("volumes", []))


def _compose_args() -> tuple[dict[str, Any], str]:
    return load_yaml("serve_config.yaml"), (ROOT / "Dockerfile").read_text()


def test_compose_wires_the_services():
    check_compose(load_yaml("docker-compose.yml"), *_compose_args())


def _env(c, name):
    return c["services"][name]["environment"]


@pytest.mark.parametrize("mutate", [
    lambda c: _env(c, "ray-head").update(KATO_SHRADS="2"),
    lambda c: _env(c, "ray-head").update(KATO_STORE="http://clickhouse:9000"),
    lambda c: _env(c, "ray-head").update(KATO_STORE="http://kato:kato-local@clickhouse-server:8123"),
    lambda c: _env(c, "ray-head").update(KATO_REDIS="redis://cache:6379/0"),
    lambda c: c["services"]["redis"].update(command=["redis-server"]),
    lambda c: c["services"]["redis"]["command"].extend(["--hash-max-listpack-entries", "4096"]),
    lambda c: _env(c, "ray-head").update(KATO_REDIS_LAYOUT="compact"),
    lambda c: c["services"]["ray-head"].update(ports=["8000:8000"]),
    lambda c: c["services"]["ray-head"]["depends_on"].update(postgres={"condition": "service_healthy"}),
    lambda c: c["services"]["ray-worker"]["depends_on"]["ray-head"].update(condition="service_started"),
    lambda c: c["services"]["redis"].pop("healthcheck"),
    lambda c: c.pop("volumes"),
    lambda c: c["services"]["ray-head"].update(command=["bash", "-c", "ray start --head --block & wait $!"]),
    lambda c: c["services"]["ray-worker"].update(command=["ray", "start", "--address=ray-head:6380", "--block"]),
    lambda c: c["services"]["ray-worker"].update(command=["ray", "start", "--address=ray-head:6379", "--block"]),
])
def test_compose_check_rejects_broken_copies(mutate: Callable[[dict], None]):
    compose = load_yaml("docker-compose.yml")
    for service in compose["services"].values():  # the anchors share one dict; give each service its own
        if "environment" in service:
            service["environment"] = dict(service["environment"])
    mutate(compose)
    with pytest.raises((AssertionError, AttributeError, KeyError, ValueError)):
        check_compose(compose, *_compose_args())


def test_the_fake_autoscaling_cluster_is_generated_from_ray_config():
    """``bench autoscale`` runs the autoscaler on a config made from ray_config.yaml: valid for Ray's schema, the
    same cluster, node types and upscaling speed, and room for serve_config.yaml's replicas (one CPU each)."""
    from cluster.ops.bench.autoscale import deploy_files, fake_cluster_config

    ray_config, deployment = deploy_files()
    fake = fake_cluster_config(ray_config, deployment, "127.0.0.1:6391", 0.2)
    jsonschema.validate(fake, ray_schema())
    assert fake["provider"]["type"] == "fake_multinode"
    assert (fake["cluster_name"], fake["head_node_type"], fake["upscaling_speed"]) == (
        ray_config["cluster_name"], ray_config["head_node_type"], ray_config["upscaling_speed"])
    assert set(fake["available_node_types"]) <= set(ray_config["available_node_types"])
    assert len(fake["available_node_types"]) == 2
    cpus = sum(t["resources"]["CPU"] * max(1, t.get("max_workers", 0)) for t in fake["available_node_types"].values())
    replicas = deployment["autoscaling_config"]["max_replicas"]
    assert cpus == replicas * deployment["ray_actor_options"]["num_cpus"]  # the maximum fits, exactly
    assert fake["max_workers"] <= ray_config["max_workers"]
