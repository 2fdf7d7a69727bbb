"""Shared fixtures: a throwaway real Redis (or NEWSWATCH_REDIS_URL), local servers, configs."""

from __future__ import annotations

import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.servers import FeedServer, SMTPServer, WebhookReceiver
from worker.classify import semantic
from worker.config import Config, load_config
from worker.embedded import start_redis
from worker.runtime import Runtime
from worker.store import Store

# The test servers live on 127.0.0.1: the documented opt-in for local use. The SSRF tests build
# their clients with the guard on.
os.environ["NEWSWATCH_ALLOW_PRIVATE_NETWORKS"] = "true"
# Many test feeds share 127.0.0.1: no politeness gap between them (tests of the gap set it).
os.environ["NEWSWATCH_HOST_MIN_GAP"] = "0"

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def shared_dir(*parts: str) -> Path:
    """A folder of ../shared/, or skip: a fresh clone elsewhere does not have it (CI does)."""
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the lent test data of ../shared/ is not beside this "
                    "clone")
    return path


@pytest.fixture(scope="session")
def redis_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis://host:port of a real Redis: NEWSWATCH_REDIS_URL (disposable!) or our own."""
    external = os.environ.get("NEWSWATCH_REDIS_URL")
    if external:
        yield external.rsplit("/", 1)[0] if external.count("/") > 2 else external
        return
    server = start_redis(tmp_path_factory.mktemp("redis"), persistent=False)
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
def redis_url(redis_base: str) -> str:
    """A database of its own for each test that asks (Celery queues live there too)."""
    db = next(_databases) % 16
    url = f"{redis_base}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def store(redis_url: str) -> Store:
    return Store.from_url(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer()
    yield server
    server.close()


TOPICS = """
topics:
  ceasefire-talks:
    name: Ceasefire talks
    query: >-
      (ceasefire OR cease-fire OR truce OR "cessation of hostilities")
      AND (talks OR negotiat* OR mediat* OR deal OR proposal OR propos*)
    exclude: tariff* OR football OR derby
  hostage-releases:
    name: Hostage releases
    query: (hostage* OR captive* OR kidnap*) AND (releas* OR freed OR exchang*)
"""


def serve_seeds(server: FeedServer) -> str:
    """Serve the three seed feeds; returns their `feeds:` entries for a config."""
    from tests.servers import Served

    server.files["/levant.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    server.files["/gulf.atom"] = Served((SEEDS / "gulf-daily.atom").read_bytes(),
                                        "application/atom+xml")
    server.files["/briefs.json"] = Served((SEEDS / "relief-briefs.json").read_bytes(),
                                          "application/feed+json")
    return "".join(f"          - url: {server.url(path)}\n            name: {name}\n"
                   for path, name in (("/levant.xml", "Levant Wire"),
                                      ("/gulf.atom", "Gulf Daily"),
                                      ("/briefs.json", "Relief Briefs")))


def spawn(args: list[str], env: dict[str, str], log: Path | None = None,
          cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """A process in its own session (so `stop` reaches its children), output to `log`."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


CELERY = [sys.executable, "-m", "celery", "-A", "worker.app"]


def celery_worker(env: dict[str, str], name: str, log: Path | None = None, *,
                  concurrency: int = 4, queues: str = "poll,process,deliver",
                  extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """A real Celery worker process on the threads pool."""
    return spawn([*CELERY, "worker", "-Q", queues, "--pool", "threads", "-c",
                  str(concurrency), "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
                  *extra], env, log)


def celery_beat(env: dict[str, str], schedule: Path,
                log: Path | None = None) -> subprocess.Popen[bytes]:
    return spawn([*CELERY, "beat", "-s", str(schedule)], env, log)


def write_config(folder: Path, body: str, *, topics: bool = True) -> Path:
    """A config file in `folder` from YAML text (the standard test topics appended)."""
    path = folder / "newswatch.yaml"
    path.write_text(textwrap.dedent(body) + (TOPICS if topics else ""))
    return path


@dataclass(frozen=True)
class SeedRun:
    """What `newswatch run --once` gives on the seeds with the shipped config."""

    alerts: int
    matches: str


# With newswatch[semantic] the DR Congo report in French (words no query has) alerts too, and
# the model tells the hostage exchange "as truce holds" is no ceasefire news.
SEED_RUN = SeedRun(8, "ceasefire-talks 6, hostage-releases 6") if semantic.available() else \
    SeedRun(7, "ceasefire-talks 7, hostage-releases 6")


def shipped_config(folder: Path, name: str = "newswatch.yaml") -> Path:
    """The shipped default config, its relative paths pointed at the repo (seeds, trained
    models, training files) and its outbox at `folder`."""
    text = (ROOT / "config" / "newswatch.yaml").read_text()
    for relative, absolute in [("../seeds/", f"{SEEDS}/"),
                               ("../var/outbox", str(folder / "outbox")),
                               ("model: models/", f"model: {ROOT}/config/models/"),
                               ("../../shared/", f"{ROOT.parent}/shared/")]:
        assert relative in text, relative
        text = text.replace(relative, absolute)
    path = folder / name
    path.write_text(text)
    return path


_RUNTIMES: list[Runtime] = []
_COLLECTOR = gc.get_threshold()


@pytest.fixture(autouse=True)
def _close_runtimes() -> Iterator[None]:
    """Runtimes made by a test are closed after it (HTTP sessions, fetch loop, parser pool),
    and the heap a runtime froze (`runtime.settle_heap`) is the collector's again, at its
    usual pace: one test's objects are not kept from another's collections."""
    yield
    while _RUNTIMES:
        _RUNTIMES.pop().close()
    gc.unfreeze()
    gc.set_threshold(*_COLLECTOR)


def make_runtime(config: Config, redis_url: str) -> Runtime:
    settings = config.settings.model_copy(update={"redis_url": redis_url,
                                                  "key_prefix": f"t{uuid.uuid4().hex[:8]}"})
    return track(Runtime.create(Config(config.path, config.feeds, config.topics,
                                       config.subscribers, settings)))


def track(rt: Runtime) -> Runtime:
    """Close this runtime when the test ends."""
    _RUNTIMES.append(rt)
    return rt


def runtime_for(folder: Path, body: str, redis_url: str) -> Runtime:
    return make_runtime(load_config(write_config(folder, body)), redis_url)


def dump_dom(url: str, profile: Path) -> str:
    """The page at `url` as headless Chromium leaves it once its scripts ran (Debian's
    chromium; the test is skipped where there is none)."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (apt-get install chromium)")
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert out.stdout, out.stderr[-500:]
    return out.stdout


def browse(html: str, script: str, folder: Path) -> str:
    """An HTML page we render, opened in headless Chromium with `script` run at its end: the
    DOM as the script leaves it (it reports by setting attributes)."""
    page = folder / "page.html"
    page.write_text(html.replace("</body>", f"<script>{script}</script></body>"),
                    encoding="utf-8")
    return dump_dom(page.as_uri(), folder / "profile")
