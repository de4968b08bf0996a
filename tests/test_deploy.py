"""The deployment files, checked statically (no container engine runs here): compose.yaml and the Dockerfile
agree with each other and with what the README says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), without comments."""
    joined = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_postgresql_and_two_serve_processes_on_it():
    services = compose()["services"]
    serves = {name: service for name, service in services.items() if service.get("command") == ["companion", "serve"]}
    assert set(services) == {"postgres", *serves} and len(serves) == 2
    assert services["postgres"]["image"].startswith("postgres:") and "healthcheck" in services["postgres"]
    for service in serves.values():
        assert service["build"] == "."
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        environment = service["environment"]
        assert environment["COMPANION_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in environment["COMPANION_DATABASE_URL"]  # the compose service, by name
        assert environment["COMPANION_HTTP_HOST"] == "0.0.0.0"
        assert environment["COMPANION_FILE_STORE"] and any(volume.endswith(environment["COMPANION_FILE_STORE"])
                                                             for volume in service["volumes"])
    published = [port.split(":")[0] for service in serves.values() for port in service["ports"]]
    assert len(set(published)) == 2  # one host port each


def test_the_readme_names_what_compose_runs_and_how_to_start_it():
    section = readme_section("Past one machine")
    for name in compose()["services"]:
        assert f"`{name}`" in section
    assert "docker compose up" in section and "compose.yaml" in section and "Dockerfile" in section
    assert "/metrics" in section and "/healthz" in section
    for variable in ("COMPANION_DATABASE_URL", "TELEGRAM_WEBHOOK_URL", "COMPANION_FILE_STORE"):
        assert variable in section


def test_the_dockerfile_installs_the_package_as_the_readme_does_and_runs_serve():
    instructions = dockerfile()
    runs = [argument for instruction, argument in instructions if instruction == "RUN"]
    readme_install = re.search(r"python3 -m venv \.venv && \.venv/bin/pip install -e \.", (ROOT / "README.md").read_text())
    assert readme_install, "the README's install command moved"
    assert any(run.replace(" --no-cache-dir", "") == readme_install.group(0) for run in runs)
    assert instructions[0][0] == "FROM" and re.match(r"python:3\.(1[1-9])", instructions[0][1])
    copied = {shlex.split(argument)[0] for instruction, argument in instructions if instruction == "COPY"}
    packages = {"bot", "core", "prompts", "migrations"}  # pyproject's [tool.setuptools.packages.find]
    assert packages <= copied and "pyproject.toml" in copied
    assert ("CMD", '["companion", "serve"]') in instructions
    assert any(instruction == "ENV" and "COMPANION_HTTP_HOST=0.0.0.0" in argument for instruction, argument in instructions)
    assert any(instruction == "HEALTHCHECK" and "/healthz" in argument for instruction, argument in instructions)
    exposed = [argument for instruction, argument in instructions if instruction == "EXPOSE"]
    assert exposed == ["8080"]
    assert all(port.endswith(":8080") for service in compose()["services"].values() for port in service.get("ports", []))


def test_pyproject_names_every_package_the_dockerfile_copies():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'include = ["bot*", "core*", "prompts*", "migrations*"]' in pyproject
