"""The docker compose deployment, checked as files (no Docker engine needed).

docker-compose.yml, Dockerfile, deploy/dagster.postgres.yaml and deploy/workspace.docker.yaml
have to agree with each other, with pyproject.toml and with .env.example; these tests read
them the way compose and Dagster do and compare.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict = COMPOSE["services"]
NAMED_VOLUMES = set(COMPOSE.get("volumes") or {})
ENV_EXAMPLE_TEXT = (ROOT / ".env.example").read_text()
ENV_EXAMPLE = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
DAGSTER_SERVICES = ("code", "webserver", "daemon")


# -- compose's variable interpolation, enough of it to resolve this file -----------------
_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")


class MissingRequired(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """`${A}`, `${A:-d}`, `${A-d}`, `${A:?e}`, `${A?e}`, `$A` and `$$`, as compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        expr = match.group("braced")
        name, op, arg = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?]|)(.*)", expr).groups()
        present, current = name in env, env.get(name, "")
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if present else arg
        if op == ":?" and not current or op == "?" and not present:
            raise MissingRequired(f"{name}: {arg}")
        return current

    return _VAR.sub(one, value)


def compose_vars(text: str) -> set[str]:
    names = set()
    for match in _VAR.finditer(text):
        if match.group("named"):
            names.add(match.group("named"))
        elif match.group("braced"):
            names.add(re.match(r"[A-Za-z_][A-Za-z0-9_]*", match.group("braced")).group(0))
    return names


def resolved_env(service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    environment = SERVICES[service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in interpolate(environment, ENV_EXAMPLE if env is None else env).items()}


def mounts(service: str) -> dict[str, str]:
    """Container path -> source (named volume or host path) of a service's volumes."""
    out = {}
    for item in SERVICES[service].get("volumes") or []:
        if isinstance(item, dict):
            out[item["target"]] = item.get("source", "")
        else:
            parts = item.split(":")
            out[parts[1]] = parts[0]
    return out


def volume_at(service: str, path: str) -> str | None:
    """The volume holding `path` in a service: the deepest mount containing it."""
    path = posixpath.normpath(path)
    best = None
    for target, source in mounts(service).items():
        target = posixpath.normpath(target)
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, source)
    return best[1] if best else None


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    if cmd is None:  # the image's CMD
        cmd = dockerfile_instructions("CMD")[-1]
        cmd = yaml.safe_load(cmd) if cmd.startswith("[") else shlex.split(cmd)
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def option(cmd: list[str], *names: str) -> str | None:
    for i, arg in enumerate(cmd[:-1]):
        if arg in names:
            return cmd[i + 1]
    return None


def dockerfile_instructions(keyword: str) -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1].strip() for line in text.splitlines()
            if line.strip() and line.split(None, 1)[0].upper() == keyword]


def published(service: str) -> list[tuple[str | None, str]]:
    """(host ip, spec) of each published port of a service."""
    out = []
    for item in SERVICES[service].get("ports") or []:
        if isinstance(item, dict):
            out.append((item.get("host_ip"), f"{item.get('published')}:{item.get('target')}"))
        else:
            parts = str(item).split(":")
            out.append((parts[0] if len(parts) == 3 else None, str(item)))
    return out


def runs_service() -> str:
    """The service runs execute in: the code server the workspace points at (the instance's
    DefaultRunLauncher starts each run as a subprocess of that server)."""
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())
    return workspace["load_from"][0]["grpc_server"]["host"]


def catcher() -> str:
    names = [n for n, s in SERVICES.items() if "mailpit" in str(s.get("image", ""))]
    assert len(names) == 1, f"expected one SMTP catcher service, found {names}"
    return names[0]


# -- the tests ------------------------------------------------------------------------------
def test_services_and_profiles():
    assert {"postgres", "code", "webserver", "daemon", "emulator"} <= set(SERVICES)
    for name in ("postgres", *DAGSTER_SERVICES):
        assert not SERVICES[name].get("profiles"), f"{name} must run without a profile"
    assert SERVICES["emulator"]["profiles"] == ["demo"]
    assert SERVICES[catcher()]["profiles"] == ["demo"]


def test_dagster_storage_env_reaches_every_dagster_process():
    for name in DAGSTER_SERVICES:
        env = SERVICES[name]["environment"]
        missing = [v for v in PG_VARS if v not in env]
        assert not missing, f"{name} lacks {missing}"
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert env["DAGSTER_PG_PASSWORD"] == SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
        assert env["DAGSTER_PG_USER"] == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
        assert env["DAGSTER_PG_DB"] == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
        assert "${DAGSTER_PG_PASSWORD" in env["DAGSTER_PG_PASSWORD"], "the password comes from .env"


def test_postgres_instance_file_reads_every_connection_value_from_env(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    path = ROOT / "deploy" / "dagster.postgres.yaml"
    config = yaml.safe_load(path.read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert {k: db[k] for k in ("hostname", "port", "username", "password", "db_name")} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"}}

    def literal_secrets(node, where=""):
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"pass|secret|token", str(key), re.I) and not (isinstance(value, dict) and "env" in value):
                    yield f"{where}/{key}"
                yield from literal_secrets(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from literal_secrets(value, f"{where}[{i}]")

    assert not list(literal_secrets(config)), "secrets must come from the environment"
    assert "postgres_url" not in path.read_text()

    for name in PG_VARS:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    (tmp_path / "dagster.yaml").write_text(path.read_text())
    dagster_instance_config(str(tmp_path))  # valid for this Dagster version
    ref = InstanceRef.from_dir(str(tmp_path))
    assert ref.run_storage_data.class_name == "PostgresRunStorage"
    # runs execute in the code server's container: the volume test below relies on it
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"


def test_published_ports_bind_loopback_only():
    for name in SERVICES:
        for host_ip, spec in published(name):
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond 127.0.0.1"
    assert ("127.0.0.1", "127.0.0.1:3000:3000") in published("webserver")
    assert ("127.0.0.1", "127.0.0.1:8025:8025") in published(catcher())
    for name in ("postgres", "code", "daemon", "emulator"):
        assert not published(name), f"{name} needs no published port"
    assert not any(spec.endswith(":1025") for _, spec in published(catcher())), "SMTP stays inside"


def test_data_volumes_are_mounted_where_runs_execute():
    runner = runs_service()
    assert runner == "code"
    for name in (runner, "daemon"):
        env = resolved_env(name)
        home = env["SALESFLOW_HOME"]
        assert home == "/data"
        assert env["SALESFLOW_WAREHOUSE"] == "/data/warehouse/warehouse.duckdb"
        at = {p: volume_at(name, p) for p in (
            env["SALESFLOW_WAREHOUSE"], f"{home}/exports/reports", f"{home}/exports/outbox",
            f"{home}/inbox", f"{home}/inbox/approved", f"{home}/processed", f"{home}/rejected")}
        assert all(v in NAMED_VOLUMES for v in at.values()), f"{name}: not on named volumes: {at}"
        assert at[env["SALESFLOW_WAREHOUSE"]] == "warehouse"
        assert at[f"{home}/exports/reports"] == at[f"{home}/exports/outbox"] == "exports"
        # an import renames inbox/x to processed/ or rejected/: one filesystem for all three
        assert at[f"{home}/inbox"] == at[f"{home}/processed"] == at[f"{home}/rejected"] \
            == at[f"{home}/inbox/approved"]
        assert len({at[env["SALESFLOW_WAREHOUSE"]], at[f"{home}/exports/reports"], at[f"{home}/inbox"]}) == 3
    # run logs written by the run worker are readable by the webserver
    logs = "/opt/dagster/home/storage"
    assert volume_at(runner, logs) and volume_at(runner, logs) == volume_at("webserver", logs)
    assert "DAGSTER_HOME=/opt/dagster/home" in " ".join(dockerfile_instructions("ENV")).replace(" \\", "")


def test_every_compose_variable_is_documented_in_env_example():
    documented = set(ENV_EXAMPLE) | set(re.findall(r"^#\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE_TEXT, re.M))
    used = compose_vars(COMPOSE_TEXT)  # `$${X}` is left to the container: not counted
    assert not sorted(used - documented), f"document in .env.example: {sorted(used - documented)}"


def test_with_env_example_the_demo_stack_is_wired_together():
    # compose reads .env (a copy of .env.example) for interpolation: required values are there
    for name in SERVICES:
        resolved_env(name)
    for name in (runs_service(), "daemon"):
        env = resolved_env(name)
        core = re.match(r"http://([^:/]+):(\d+)", env["SALESFLOW_CORE_URL"])
        assert core, env["SALESFLOW_CORE_URL"]
        assert core.group(1) == "emulator"
        assert option(command("emulator"), "--port") == core.group(2)
        assert option(command("emulator"), "--host") == "0.0.0.0"
        assert env["SALESFLOW_SMTP_HOST"] == catcher()
        assert env["SALESFLOW_SMTP_PORT"] in [str(p) for p in SERVICES[catcher()].get("expose", [])]
        assert env["SALESFLOW_SMTP_SECURITY"] == "none"
        assert env["SALESFLOW_CORE_PHONE"] == ENV_EXAMPLE["SALESFLOW_CORE_PHONE"]
        assert env["SALESFLOW_CORE_PHONE"] == resolved_env("emulator")["SALESFLOW_CORE_PHONE"]
        assert env["SALESFLOW_CORE_PASSWORD"] == resolved_env("emulator")["SALESFLOW_CORE_PASSWORD"]
    # the same file without the compose section (an older .env) still gives the demo wiring
    older = {k: v for k, v in ENV_EXAMPLE.items() if not k.startswith("SALESFLOW_COMPOSE_")}
    env = resolved_env("code", older)
    assert env["SALESFLOW_CORE_URL"].startswith("http://emulator:")
    assert (env["SALESFLOW_SMTP_HOST"], env["SALESFLOW_SMTP_SECURITY"]) == (catcher(), "none")
    # a real server; an empty host means the outbox folder
    real = {**ENV_EXAMPLE, "SALESFLOW_COMPOSE_SMTP_HOST": "smtp.example.com",
            "SALESFLOW_COMPOSE_SMTP_PORT": "", "SALESFLOW_COMPOSE_SMTP_SECURITY": "starttls"}
    env = resolved_env("code", real)
    assert (env["SALESFLOW_SMTP_HOST"], env["SALESFLOW_SMTP_PORT"], env["SALESFLOW_SMTP_SECURITY"]) \
        == ("smtp.example.com", "", "starttls")
    assert resolved_env("code", {**ENV_EXAMPLE, "SALESFLOW_COMPOSE_SMTP_HOST": ""})["SALESFLOW_SMTP_HOST"] == ""
    with pytest.raises(MissingRequired):
        resolved_env("code", {k: v for k, v in ENV_EXAMPLE.items() if k != "DAGSTER_PG_PASSWORD"})


def test_mail_settings_live_in_one_anchor():
    anchors = re.findall(r"^(x-[\w-]+):\s*&([\w-]+)", COMPOSE_TEXT, re.M)
    holding = [key for key, _ in anchors if any(k.startswith("SALESFLOW_SMTP_") for k in COMPOSE[key])]
    assert len(holding) == 1, holding
    mail = COMPOSE[holding[0]]
    for name in ("HOST", "PORT", "SECURITY", "USER", "PASSWORD", "SENDER"):
        assert f"SALESFLOW_SMTP_{name}" in mail
    for name in (runs_service(), "daemon"):
        env = SERVICES[name]["environment"]
        assert all(env.get(k) == v for k, v in mail.items()), f"{name} lacks the mail settings"


def test_dockerfile_copies_every_package_and_installs_the_postgres_extra():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({pattern.rstrip("*").rstrip(".") for pattern in include})
    copied = set()
    for args in dockerfile_instructions("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        copied.update(p.rstrip("/") for p in parts[:-1])
    for package in packages:
        assert (ROOT / package).is_dir(), package
        assert package in copied, f"the Dockerfile does not copy {package}/"
    # the install that brings the dependencies has the extra (PostgreSQL storage for Dagster)
    installs = [r for r in dockerfile_instructions("RUN")
                if re.search(r"\bpip install\b", r) and "--no-deps" not in r]
    assert installs and any(re.search(r"\.\[[^\]]*\bpostgres\b[^\]]*\]", r) for r in installs), installs
    assert "deploy/dagster.postgres.yaml /opt/dagster/home/dagster.yaml" in dockerfile_instructions("COPY")
    assert any("deploy/workspace.docker.yaml" in c for c in dockerfile_instructions("COPY"))


def test_workspace_docker_points_at_the_code_service():
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == "code" and "code" in SERVICES
    code = command("code")
    assert code[:3] == ["dagster", "code-server", "start"] or code[:3] == ["dagster", "api", "grpc"]
    assert str(server["port"]) == option(code, "-p", "--port")
    assert option(code, "-h", "--host") == "0.0.0.0"
    assert option(code, "-m", "--module-name") == PYPROJECT["tool"]["dagster"]["module_name"]
    location = PYPROJECT["tool"]["dagster"]["code_location_name"]
    assert server["location_name"] == location
    assert option(code, "--location-name") in (None, location)
    for name in ("webserver", "daemon"):
        assert option(command(name), "-w", "--workspace") == "workspace.docker.yaml", name


def test_healthchecks_and_start_order():
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert SERVICES["code"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        depends = SERVICES[name]["depends_on"]
        assert depends["code"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    # nothing outside the demo profile waits for a demo-only service
    demo = {n for n, s in SERVICES.items() if "demo" in (s.get("profiles") or [])}
    for name, service in SERVICES.items():
        if name not in demo:
            assert not demo & set(service.get("depends_on") or {}), name
