"""compose.yaml is valid for docker-compose, and every ``tmpmail <sub>`` in it exists."""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from deploy.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"


def docker_compose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed: apt-get install docker-compose (.ci/run does)"
        )
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return set(actions[0].choices)


def tmpmail_calls(text: str) -> list[tuple[str, ...]]:
    """Every ``tmpmail <sub> [arg]`` in compose.yaml, in list or shell form."""
    text = re.sub(r"(?m)(^|\s)#.*$", "", text)  # comments are prose, not commands
    calls = []
    for match in re.finditer(r'"tmpmail"\s*,\s*"([\w-]+)"(?:\s*,\s*"([\w-]+)")?', text):
        calls.append(tuple(part for part in match.groups() if part))
    for match in re.finditer(r"(?<![\w/.-])tmpmail ([\w-]+)", text):
        calls.append((match.group(1),))
    return calls


def test_compose_file_is_valid() -> None:
    result = docker_compose("-f", str(COMPOSE), "config", cwd=REPO)
    assert result.returncode == 0, result.stderr
    services = docker_compose("-f", str(COMPOSE), "config", "--services", cwd=REPO)
    assert set(services.stdout.split()) == {"kafka", "mongo", "topics", "streams", "api", "ingest"}


def test_docker_compose_rejects_a_wrong_condition(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    assert "condition: service_healthy" in text
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("condition: service_healthy", "condition: service_ready", 1))
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "Dockerfile", tmp_path / "deploy" / "Dockerfile")
    result = docker_compose("-f", str(broken), "config", cwd=tmp_path)
    assert result.returncode != 0
    assert "service_ready" in result.stderr


def test_compose_commands_name_real_subcommands() -> None:
    calls = tmpmail_calls(COMPOSE.read_text())
    known = subcommands()
    assert {call[0] for call in calls} >= {"topics", "ingest", "streams", "api", "health"}
    for call in calls:
        assert call[0] in known, f"compose.yaml calls `tmpmail {call[0]}`, not a subcommand"
        if call[0] == "health":
            build_parser().parse_args(list(call))  # exits (fails the test) on a bad service


def test_console_script_points_at_a_function() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    target = project["scripts"]["tmpmail"]
    module_name, _, attribute = target.partition(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_tmpmail_calls_finds_both_forms() -> None:
    text = (
        "# tmpmail on Docker\n"
        'command: ["tmpmail", "api"]\ntest: ["CMD-SHELL", "tmpmail health ingest"]\n'
    )
    assert tmpmail_calls(text) == [("api",), ("health",)]


def test_dockerfile_copies_every_package() -> None:
    """`pip install .` in the image needs every package pyproject declares."""
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    copied = set(re.findall(r"(?m)^COPY (\w+) \./\1$", dockerfile))
    assert set(packages) <= copied, f"deploy/Dockerfile does not copy {set(packages) - copied}"
