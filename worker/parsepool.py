"""Feed parsing off the I/O path and over the cores.

feedparser is pure Python: parsing a changed 50 KB feed costs ~6 ms of one core while a 304
costs a tenth of a millisecond, so a poll batch's time is its parsing. Batches with several
changed bodies are parsed in a pool of processes (one per core by default,
`settings.parse_processes`); a few bodies are parsed inline, where a round trip to the pool
would cost more than it saves. The pool starts on first use, from a clean `forkserver`
process (forking a threaded Celery worker is unsafe).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .errors import ParseError
from .models import Entry
from .parse import parse_feed

INLINE_BELOW = 4          # fewer changed bodies than this: parse in this thread

Body = tuple[bytes, str, str, str, Mapping[str, str]]   # body, url, feed id, name, headers
Parsed = list[Entry] | Exception


class Parser:
    def __init__(self, processes: int | None = None) -> None:
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def parse_all(self, bodies: Sequence[Body], *, max_entries: int) -> list[Parsed]:
        """Each body's entries, or the error naming its feed; in order (outside a loop)."""
        async def all_() -> list[Parsed]:
            pool = len(bodies) >= INLINE_BELOW
            return list(await asyncio.gather(*(
                self.parse_async(body, max_entries=max_entries, pool=pool) for body in bodies)))

        return asyncio.run(all_())

    async def parse_async(self, body: Body, *, max_entries: int, pool: bool = True) -> Parsed:
        """One body, from an event loop: in a pool process (`pool` and more than one process
        configured), else in a thread, so the loop goes on with its requests meanwhile."""
        if not pool or self.processes <= 1:
            return await asyncio.to_thread(_parse, body, max_entries)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._get_pool(), _parse, body, max_entries)
        except BrokenProcessPool:          # a parser process died (OOM): carry on in a thread
            self.close()
            return await asyncio.to_thread(_parse, body, max_entries)
        except Exception as exc:           # e.g. a result that would not pickle: this feed only
            return ParserCrash(f"{type(exc).__name__}: {exc}")

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("forkserver"))
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _parse(body: Body, max_entries: int) -> Parsed:
    """Runs in the pool: exceptions come back as values, as our own ParseError or a
    description of the unforeseen one (custom exceptions do not always survive pickling)."""
    data, url, feed_id, name, headers = body
    try:
        return parse_feed(data, url=url, feed_id=feed_id, feed_name=name, headers=headers,
                          max_entries=max_entries)
    except ParseError as exc:
        return exc
    except Exception as exc:               # recorded for this feed alone by the pipeline
        return ParserCrash(f"{type(exc).__name__}: {exc}")


class ParserCrash(RuntimeError):
    """The parser failed in a way we did not foresee; the message names the original error."""
