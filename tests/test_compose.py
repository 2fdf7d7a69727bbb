"""docker-compose.yml parses and runs real entry points (no Docker engine needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def test_compose_services_and_commands(redis_url: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "worker", "beat", "flower", "mailpit"}
    assert "--appendonly" in services["redis"]["command"]
    assert "redis-data" in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url,
               NEWSWATCH_CONFIG=str(ROOT / "config" / "newswatch.yaml"))
    for name in ("worker", "beat"):
        service = services[name]
        assert service["build"] == "." and "FROM python" in dockerfile
        command = service["command"]
        assert command[:3] == ["celery", "-A", "worker.app"]
        # The same command, with --help: Celery imports the app and validates the options.
        out = subprocess.run([sys.executable, "-m", *command, "--help"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
    worker_queues = services["worker"]["command"][services["worker"]["command"].index("-Q") + 1]
    assert set(worker_queues.split(",")) == {"poll", "process", "deliver"}
    # Flower watches the broker the workers use; workers send the task events it shows.
    broker = services["worker"]["environment"]["NEWSWATCH_REDIS_URL"]
    assert f"--broker={broker}" in services["flower"]["command"]
    assert "--task-events" in services["worker"]["command"]
    # Email goes to Mailpit (its SMTP port), read in its web UI.
    smtp = services["worker"]["environment"]["NEWSWATCH_SMTP_URL"]
    assert smtp == "smtp://mailpit:1025"
    assert "127.0.0.1:8025:8025" in services["mailpit"]["ports"]
    assert "127.0.0.1:5555:5555" in services["flower"]["ports"]


def test_celery_worker_refuses_an_invalid_config(tmp_path: Path, redis_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  x:\n    name: X\n    query: '(talks'\n")
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url, NEWSWATCH_CONFIG=str(bad))
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    assert f"{bad}:4: topics.x.query: column 7: expected ) to close the ( at column 1" \
        in out.stderr
