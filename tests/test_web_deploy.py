"""deploy/: the example config loads, lists and comments every key the schema
declares, and the README's operator section matches the files in deploy/."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import rules as config
from bot.config import schema

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / "config.example.toml"
UNITS = [DEPLOY / "bpbot.service", DEPLOY / "bpbot-worker@.service"]
WEB_UNIT = DEPLOY / "bpbot-web.service"


def _operator_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Operating bpbot")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_example_config_loads():
    rules = config.load(EXAMPLE)
    assert rules.state_dir == Path("/var/lib/bpbot")
    assert rules.web_listen == ("127.0.0.1", 8080)
    assert rules.source.password_file == Path("/etc/bpbot/imap-password")
    assert rules.smtp.password_file == Path("/etc/bpbot/smtp-password")


def _present(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        name = f"{prefix}{key}"
        keys.add(name)
        if isinstance(value, dict):
            keys |= _present(value, name + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                keys |= _present(item, name + ".")
    return keys


def _declared(table: BaseModel, prefix: str = "") -> set[str]:
    """Every key the schema declares for this file (its source kind's keys)."""
    keys = set()
    for name in type(table).model_fields:
        value = getattr(table, name)
        keys.add(prefix + name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                keys |= _declared(item, f"{prefix}{name}.")
    return keys


def test_example_config_has_every_key_the_schema_declares():
    data = tomllib.loads(EXAMPLE.read_text())
    declared = _declared(schema.validate(data, str(EXAMPLE), DEPLOY))
    deprecated = {"subset.full"}  # still accepted, with a warning that it is ignored
    assert declared - _present(data) - deprecated == set(), \
        "keys the schema declares that the example leaves out"


def test_every_key_of_the_example_config_is_commented():
    documented: set[str] = set()
    previous = ""
    for line in EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        match = re.match(r'^("[^"]+"|[A-Za-z_][\w-]*)\s*=', stripped)
        if match:
            key = match.group(1)
            assert previous.startswith("#") or key in documented, f"{key} has no comment above it"
            documented.add(key)
        if stripped:
            previous = stripped


def test_no_password_is_inline():
    text = EXAMPLE.read_text()
    assert not re.search(r"^\s*password\s*=", text, re.M)
    assert "password_file" in text


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_are_hardened_and_restart(unit):
    text = unit.read_text()
    for line in ("User=bpbot", "StateDirectory=bpbot", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/bpbot", "Restart=on-failure", "NoNewPrivileges=yes"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{unit.name}: {line}"
    # bubblewrap needs user namespaces and a fresh /proc: these would break builds.
    for key in ("RestrictNamespaces", "PrivateUsers", "ProtectKernelTunables", "ProtectProc"):
        assert not re.search(rf"^{key}=", text, re.M), f"{unit.name}: {key} breaks bwrap"


def test_worker_unit_runs_rq_from_the_venv():
    text = (DEPLOY / "bpbot-worker@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
    assert exec_start.startswith("/opt/bpbot/.venv/bin/rq worker --url ")
    assert exec_start.endswith(" bpbot-builds")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path):
    """Unknown keys and bad values; the venv's binaries stand in for /opt/bpbot's."""
    venv_bin = ROOT / ".venv" / "bin"
    names = []
    for unit in [*UNITS, WEB_UNIT]:
        text = unit.read_text().replace("/opt/bpbot/.venv/bin/rq", "/bin/true")
        text = text.replace("/opt/bpbot/.venv/bin/", f"{venv_bin}/")
        name = unit.name.replace("@.", "@1.")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *names],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in res.stderr.splitlines()
                if "bpbot" in line and "not found" not in line.lower()]
    assert problems == [] and res.returncode == 0, res.stderr


def test_web_unit_runs_bpbot_web_hardened_with_a_read_only_state():
    text = WEB_UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
    daemon_config = re.search(r"--config (\S+)", UNITS[0].read_text()).group(1)
    assert exec_start.startswith(f"/opt/bpbot/.venv/bin/bpbot web --config {daemon_config} ")
    for line in ("User=bpbot", "ProtectSystem=strict", "ReadOnlyPaths=/var/lib/bpbot",
                 "Restart=on-failure", "NoNewPrivileges=yes", "ProtectHome=yes",
                 "PrivateTmp=yes", "CapabilityBoundingSet=", "RestrictNamespaces=yes"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    # Anything that would make the state writable: ReadWritePaths, StateDirectory.
    for key in ("ReadWritePaths", "StateDirectory"):
        assert not re.search(rf"^{key}=", text, re.M), key
    tasks = int(re.search(r"^TasksMax=(\d+)$", text, re.M).group(1))
    from bot.web import server as web_server
    assert web_server.MAX_WORKERS < tasks <= 2 * web_server.MAX_WORKERS


def test_containerfile_installs_what_the_readme_says():
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM debian:12", text, re.M)
    for pkg in ("git", "gcc", "make", "bubblewrap", "ccache"):
        assert re.search(rf"\b{pkg}\b", text), pkg
    assert "pip install --no-cache-dir -e /opt/bpbot" in text
    assert "user namespaces" in text.lower()


def test_readme_operator_section_matches_deploy():
    section = _operator_section()
    for name in ("deploy/bpbot.service", "deploy/bpbot-worker@.service", "deploy/Containerfile",
                 "deploy/config.example.toml"):
        assert name in section and (ROOT / name).exists(), name
    # The paths and commands it gives are the ones the files use.
    unit = UNITS[0].read_text()
    config_path = re.search(r"--config (\S+)", unit).group(1)
    assert config_path in section
    worker = re.search(r"^ExecStart=(\S+) worker", UNITS[1].read_text(), re.M).group(1)
    assert worker in section and "bpbot-builds" in section
    for word in ("password_file", "/var/lib/bpbot", "journalctl -u bpbot", "[web]", "listen",
                 'executor = "rq"', "[rq]", "systemctl enable --now bpbot",
                 "bpbot-worker@", "git pull", "/etc/bpbot/worker.env"):
        assert word in section, word
