"""The Docker stack, checked statically (no Docker engine runs here): every
file compose mounts exists, and service names, ports and paths agree between
docker-compose.yml, the Dockerfile, config/docker.yaml, prometheus.yml,
alertmanager.yml and the Grafana provisioning."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from monitor.config import load_config

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PROMETHEUS = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
ALERTMANAGER = yaml.safe_load((REPO / "config" / "alertmanager" / "alertmanager.yml").read_text())
DATASOURCES = {
    source["uid"]: source
    for source in yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "qualimon.yml").read_text())[
        "datasources"]
}
DASHBOARD_PROVIDERS = yaml.safe_load(
    (REPO / "grafana" / "provisioning" / "dashboards" / "qualimon.yml").read_text())["providers"]
DOCKER_CONFIG = REPO / "config" / "docker.yaml"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path, for bind mounts of the repository."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source
    return found


def container_ports(service: str) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1]) for p in SERVICES[service].get("ports", [])}


def flag(service: str, name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in SERVICES[service]["command"] if arg.startswith(f"--{name}="))


def host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "", parts.port or default_port


def docker_config_environ() -> dict[str, str]:
    return {name: "example-secret" for name in ENV_REF.findall(DOCKER_CONFIG.read_text())}


# ---------------------------------------------------------------------------
# compose


def test_the_stack_has_its_five_services_and_a_migration_step():
    assert set(SERVICES) == {"qualimon", "migrate", "postgres", "prometheus", "alertmanager", "grafana"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_file_exists(service: str):
    for source in mounts(service).values():
        assert (REPO / source).exists(), f"{service} mounts missing {source}"


def test_migrations_run_before_the_service():
    assert SERVICES["migrate"]["command"][:2] == ["db", "upgrade"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["qualimon"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["qualimon"]["command"][0] == "run"


def test_published_ports_listen_on_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_qualimon_config_is_mounted_where_the_commands_read_it():
    config_path = SERVICES["qualimon"]["command"][-1]
    assert mounts("qualimon")[config_path] == "./config/docker.yaml"
    assert SERVICES["migrate"]["command"][-1] == config_path
    assert f'"{config_path}"' in DOCKERFILE


def test_compose_passes_every_secret_the_docker_config_needs():
    environment = SERVICES["qualimon"]["environment"]
    assert set(docker_config_environ()) <= set(environment)


# ---------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_the_image_is_slim_and_runs_as_a_non_root_user():
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "RUN" and "pip install" in arg for op, arg in steps)


def test_the_healthcheck_asks_healthz_with_python_not_curl():
    healthcheck = next(arg for op, arg in dockerfile_instructions() if op == "HEALTHCHECK")
    assert "/healthz" in healthcheck and '"python"' in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck


def test_the_image_exposes_the_port_qualimon_listens_on():
    config = load_config(DOCKER_CONFIG, environ=docker_config_environ())
    exposed = {int(p) for op, arg in dockerfile_instructions() if op == "EXPOSE" for p in shlex.split(arg)}
    assert config.http.port in exposed
    assert config.http.port in container_ports("qualimon")
    assert f"127.0.0.1:{config.http.port}/healthz" in DOCKERFILE
    assert config.http.host == "0.0.0.0", "inside a container qualimon must listen on all interfaces"


def test_the_build_context_keeps_what_pip_install_needs():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv"} <= ignored
    assert not ignored & {"pyproject.toml", "monitor", "probes", "README.md", "LICENSE"}


# ---------------------------------------------------------------------------
# config/docker.yaml


def test_the_docker_config_points_at_the_compose_database():
    config = load_config(DOCKER_CONFIG, environ=docker_config_environ())
    url = make_url(config.database)
    postgres = SERVICES["postgres"]["environment"]
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "postgres" and (url.port or 5432) == 5432
    assert url.database == postgres["POSTGRES_DB"] and url.username == postgres["POSTGRES_USER"]
    assert url.password == "example-secret"


def test_the_docker_config_uses_reserved_example_values_only():
    config = load_config(DOCKER_CONFIG, environ=docker_config_environ())
    domains = [m.email.rpartition("@")[2] for m in config.mailboxes.values()]
    domains += [s.email.address.rpartition("@")[2] for s in config.sites if s.email]
    domains += [server.host for m in config.mailboxes.values() for server in (m.smtp, m.imap) if server]
    domains += [re.split(r"[:;]", line.sip.proxy)[1] for line in config.phone_lines.values()]
    domains += [line.sip.from_.rpartition("@")[2] for line in config.phone_lines.values()]
    for domain in domains:
        assert re.search(r"(^|\.)example\.(org|net|com)$", domain), domain
    numbers = [s.phone.number for s in config.sites if s.phone]
    numbers += [re.search(r"\+\d+", line.sip.from_).group(0) for line in config.phone_lines.values()]
    for number in numbers:
        assert re.fullmatch(r"\+3319900\d{4}", number), number


# ---------------------------------------------------------------------------
# Prometheus and Alertmanager


def scrape_targets(job: str) -> list[str]:
    config = next(c for c in PROMETHEUS["scrape_configs"] if c["job_name"] == job)
    return [t for group in config["static_configs"] for t in group["targets"]]


def test_prometheus_scrapes_the_qualimon_service_on_its_port():
    config = load_config(DOCKER_CONFIG, environ=docker_config_environ())
    for target in scrape_targets("qualimon"):
        host, port = host_port(target, 80)
        assert host in SERVICES and host == "qualimon"
        assert port == config.http.port


def test_prometheus_alerts_the_alertmanager_service():
    targets = [t for am in PROMETHEUS["alerting"]["alertmanagers"] for g in am["static_configs"]
               for t in g["targets"]]
    assert targets
    for target in targets:
        host, port = host_port(target, 9093)
        assert host == "alertmanager" and port in container_ports("alertmanager")


def test_prometheus_finds_its_config_and_rules_where_compose_mounts_them():
    config_file = Path(flag("prometheus", "config.file"))
    host_dir = mounts("prometheus")[str(config_file.parent)]
    assert (REPO / host_dir / config_file.name).exists()
    for rule_file in PROMETHEUS["rule_files"]:
        assert (REPO / host_dir / rule_file).exists()


def test_alertmanager_finds_its_config_and_password_file():
    config_file = flag("alertmanager", "config.file")
    assert mounts("alertmanager")[config_file] == "./config/alertmanager/alertmanager.yml"
    secret = SERVICES["alertmanager"]["secrets"][0]
    assert ALERTMANAGER["global"]["smtp_auth_password_file"] == f"/run/secrets/{secret}"
    assert secret in COMPOSE["secrets"]


# ---------------------------------------------------------------------------
# Grafana


def test_grafana_mounts_provisioning_and_dashboards_where_the_provider_reads():
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    for provider in DASHBOARD_PROVIDERS:
        assert grafana[provider["options"]["path"]] == "./grafana/dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_dir, _, home_file = home.rpartition("/")
    assert (REPO / grafana[home_dir] / home_file).exists()


def test_grafana_reaches_prometheus_by_its_service_name_and_port():
    host, port = host_port(DATASOURCES["qualimon-prom"]["url"], 80)
    assert host == "prometheus" and port in container_ports("prometheus")
    assert "--web.listen-address" not in " ".join(SERVICES["prometheus"]["command"])  # default :9090


def test_grafana_reads_the_same_postgresql_database_as_qualimon():
    source = DATASOURCES["qualimon-pg"]
    host, port = host_port(source["url"], 5432)
    postgres = SERVICES["postgres"]["environment"]
    assert (host, port) == ("postgres", 5432)
    assert source["jsonData"]["database"] == postgres["POSTGRES_DB"]
    assert source["user"] == postgres["POSTGRES_USER"]
    password_var = source["secureJsonData"]["password"].lstrip("$").strip("{}")
    assert password_var in SERVICES["grafana"]["environment"]


def test_prometheus_job_and_scrape_interval_match_what_the_boards_assume():
    assert scrape_targets("qualimon")
    assert DATASOURCES["qualimon-prom"]["jsonData"]["timeInterval"] == PROMETHEUS["global"]["scrape_interval"]
