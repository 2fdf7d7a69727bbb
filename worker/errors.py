"""One error root; every message names its culprit (feed URL, topic id, subscriber, file:line)."""


class NewswatchError(Exception):
    """Root of every error newswatch raises on purpose."""


class ConfigError(NewswatchError):
    """The configuration is invalid; `problems` holds every `FILE:LINE: path: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class FetchError(NewswatchError):
    """A feed could not be fetched; `status` and `retry_after` when the server answered;
    `kind` says what sort of failure it was (for operators: "HTTP 503", "timeout", ...)."""

    elapsed = 0.0       # seconds the attempt took (set by fetch)

    def __init__(self, url: str, reason: str, *, status: int | None = None,
                 retry_after: float | None = None, kind: str | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.kind = kind or (f"HTTP {status}" if status else "fetch")
        super().__init__(f"{url}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_fetch_error, (self.url, self.reason, self.status, self.retry_after,
                               self.kind))


class ParseError(NewswatchError):
    """A feed body yielded no entries."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:       # crosses process boundaries (parsepool)
        return (ParseError, (self.url, self.reason))


def _fetch_error(url: str, reason: str, status: int | None, retry_after: float | None,
                 kind: str | None = None) -> FetchError:
    return FetchError(url, reason, status=status, retry_after=retry_after, kind=kind)


class QueryError(NewswatchError):
    """A topic query does not parse; `column` is 1-based."""

    def __init__(self, message: str, column: int, topic: str | None = None) -> None:
        self.message = message
        self.column = column
        self.topic = topic
        where = f"topic {topic!r}, " if topic else ""
        super().__init__(f"{where}column {column}: {message}")

    def for_topic(self, topic: str) -> "QueryError":
        return QueryError(self.message, self.column, topic)


class DeliveryError(NewswatchError):
    """An alert could not be delivered; `retryable` says whether trying again may help."""

    def __init__(self, target: str, reason: str, *, retryable: bool,
                 retry_after: float | None = None) -> None:
        self.target = target
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{target}: {reason}")
