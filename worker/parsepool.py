"""Intake of changed feed bodies, off the I/O path and over the cores: parse, then take in the
entries never seen before (store.entries.add_new), in the same process.

feedparser is pure Python: a changed 50 KB feed costs ~6 ms of one core where a 304 costs a
tenth of a millisecond, so a poll batch's time is its parsing. Bodies are handed over as they
arrive (from the fetch loop) to a pool of processes (`settings.parse_processes`; by default
one more than the cores, as each also waits on Redis), each with its own Redis connection, so
that parsing and storing run side by side and only entry keys come back. Batches of a few
feeds stay in this process (in a thread), where a hop to the pool would cost more than it
saves. The pool starts on first
use, from a clean `forkserver` process (forking a threaded Celery worker is unsafe).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import NewswatchError, ParseError
from .parse import read_feed
from .store import Store

log = logging.getLogger(__name__)
INLINE_BELOW = 4          # batches of fewer feeds than this: parse in this process ...
INLINE_MAX_BYTES = 128_000    # ... unless the body is larger: only a pool process can be cut
                              # short when parsing outlasts max_parse_seconds
# A config of fewer feeds never starts the pool for its batches (bodies over INLINE_MAX_BYTES
# still go to it) nor warms it up: starting it (forkserver, a process per core importing the
# parser) costs ~0.4 s, more than parsing a few feeds takes (~6 ms each), and `run --once` on
# the four seeds waited for it (polled in 0.04 s with threads, 0.35-0.5 s with the pool).
POOL_FROM_FEEDS = 20

Body = tuple[bytes, str, str, str, Mapping[str, str]]   # body, url, feed id, name, headers


@dataclass(frozen=True)
class StoreSpec:
    """How a pool process connects to the same Redis as its parent (a Store cannot travel)."""

    url: str
    prefix: str
    options: tuple[tuple[str, Any], ...] = ()

    def connect(self) -> Store:
        return Store.from_url(self.url, self.prefix, **dict(self.options))


@dataclass(frozen=True)
class Taken:
    entries: int                # entries in the body (up to max_entries)
    new: list[str]              # keys of those never seen before, queued for processing


Intake = Taken | Exception


class Parser:
    def __init__(self, store: Store, spec: StoreSpec, processes: int | None = None, *,
                 feeds: int | None = None) -> None:
        """`feeds`: how many the config polls (None: unknown); fewer than POOL_FROM_FEEDS,
        and batches are parsed in threads."""
        self.store, self.spec = store, spec
        self.pools_batches = feeds is None or feeds >= POOL_FROM_FEEDS
        # One more process than cores: each also waits on Redis, and the spare fills that gap.
        self.processes = (os.cpu_count() or 1) + 1 if processes is None else processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def take_in_all(self, bodies: Sequence[Body], *, max_entries: int,
                    max_seconds: float | None = None) -> list[Intake]:
        """`take_in` for many bodies, outside an event loop; in order."""
        async def all_() -> list[Intake]:
            pool = len(bodies) >= INLINE_BELOW
            return list(await asyncio.gather(*(
                self.take_in(body, max_entries=max_entries, pool=pool, max_seconds=max_seconds)
                for body in bodies)))

        return asyncio.run(all_())

    async def take_in(self, body: Body, *, max_entries: int, pool: bool = True,
                      max_seconds: float | None = None) -> Intake:
        """Parse one body and take in its new entries: in a pool process (`pool`, or a body
        over INLINE_MAX_BYTES, and more than one process configured), where parsing is cut
        after `max_seconds`; else in a thread, so the event loop goes on with its requests
        meanwhile. Failures come back as values, naming the feed."""
        pool = (pool and self.pools_batches) or len(body[0]) > INLINE_MAX_BYTES
        if not pool or self.processes <= 1:
            return await asyncio.to_thread(take_in_body, body, max_entries, self.store)
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._get_pool(), take_in_body, body, max_entries, None,
                                          max_seconds)
        except Exception as exc:           # no child processes here (e.g. a daemonic Celery
            log.warning("parser processes cannot start here (%s: %s): parsing in threads",
                        type(exc).__name__, exc)     # prefork child): threads from now on
            self.close()
            self.processes = 0
            return await asyncio.to_thread(take_in_body, body, max_entries, self.store)
        try:
            return await future
        except BrokenProcessPool:          # a parser process died (OOM): carry on in a thread
            self.close()
            return await asyncio.to_thread(take_in_body, body, max_entries, self.store)
        except Exception as exc:           # e.g. a result that would not pickle: this feed only
            return ParserCrash(f"{type(exc).__name__}: {exc}")

    def warm_up(self) -> None:
        """Start the pool's processes now (a worker does at start), not in the first batch;
        nothing when its batches are parsed in threads."""
        if self.processes > 1 and self.pools_batches:
            try:
                pool = self._get_pool()
                for future in [pool.submit(_ready) for _ in range(self.processes)]:
                    future.result()
            except Exception as exc:       # the first batch will say so and use threads
                log.debug("parser processes did not start: %s", exc)

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("forkserver"),
                    initializer=_connect, initargs=(self.spec,))
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


class ParserCrash(NewswatchError):
    """The parser failed in a way we did not foresee; the message names the original error."""


class ParseTimeout(BaseException):
    """Raised in a pool process when parsing outlasts its time. A BaseException: feedparser
    catches Exception to retry with its lenient parser, which would start the work again."""


_store: Store | None = None          # a pool process's own connection


def _ready() -> bool:
    return _store is not None


def _connect(spec: StoreSpec) -> None:
    global _store
    _store = spec.connect()
    signal.signal(signal.SIGALRM, _out_of_time)      # tasks run in this process's main thread


def _out_of_time(signum: int, frame: object) -> None:
    raise ParseTimeout


class _Timer:
    """`max_seconds` of parsing over one span or several (SIGALRM: pool processes only; the
    clock stops between spans, so that it never interrupts a Redis call)."""

    def __init__(self, seconds: float | None) -> None:
        self.limit = seconds or 0.0
        self.left = seconds

    def __enter__(self) -> None:
        if self.left:      # and again every quarter second, should anything swallow the first
            signal.setitimer(signal.ITIMER_REAL, self.left, 0.25)

    def __exit__(self, *exc: object) -> None:
        if self.left:
            left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
            self.left = max(left, 0.001)


def take_in_body(body: Body, max_entries: int, store: Store | None,
                 max_seconds: float | None = None) -> Intake:
    """Parse a body and store its new entries: in a pool process (store None: the
    process's own connection; parsing is cut after `max_seconds`), a thread of the parent,
    or for a WebSub push. The entries taken in before are asked of Redis between parsing and
    making the entries, and not made again (most of a changed feed's are such). A Redis
    failure is raised, not recorded as the feed's: it is the whole batch's."""
    data, url, feed_id, name, headers = body
    timer = _Timer(max_seconds if store is None else None)
    store = store or _store
    assert store is not None
    read = _parsing(url, timer, lambda: read_feed(
        data, url=url, feed_id=feed_id, feed_name=name, headers=headers,
        max_entries=max_entries))
    if isinstance(read, Exception):
        return read
    known = store.entries.known(feed_id, read.given_ids)     # a round trip: not timed
    made = _parsing(url, timer, lambda: read.entries(known))
    if isinstance(made, Exception):
        return made
    count, entries = made
    return Taken(count, store.entries.add_new(entries))


T = TypeVar("T")


def _parsing(url: str, timer: _Timer, step: Callable[[], T]) -> T | Exception:
    """A step of parsing, timed; its failure as this feed's error."""
    try:
        with timer:
            return step()
    except ParseTimeout:
        return ParseError(url, f"parsing took longer than {timer.limit:g} s "
                               "(max_parse_seconds)")
    except ParseError as exc:
        return exc
    except Exception as exc:               # recorded for this feed alone by the pipeline
        return ParserCrash(f"{type(exc).__name__}: {exc}")
