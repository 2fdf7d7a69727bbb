"""Delivery: one alert, digest or notice through its subscriber's channel, once, by one worker
at a time; a failure is retried or dead-lettered as `deliver.retry.decide_failure` says."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from . import feedback
from .bodies import Body, RecordStatus
from .config import Config, SubscriberConfig
from .deliver import render
from .deliver.apprise import send_apprise
from .deliver.attempt import attempt
from .deliver.email import send_email
from .deliver.outbox import write_outbox
from .deliver.retry import decide_failure
from .deliver.webhook import send_webhook
from .errors import DeliveryError
from .logs import alert_fields
from .store import Records, Store

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("worker.pipeline")
WAITING = (RecordStatus.PENDING, RecordStatus.RETRYING)     # a record a delivery can take


@dataclass(frozen=True)
class Deliverer:
    """What delivery uses, and nothing else: the records, the webhook client, the config's
    subscribers and settings."""

    store: Store
    http: Callable[[], httpx.Client]     # the webhook client, made when first needed
    config: Config


@dataclass(frozen=True)
class DeliveryOutcome:
    alert_id: str
    status: str                      # delivered | skipped | retrying | dead
    retry_in: float | None = None
    error: str | None = None


def deliver_alert(d: Deliverer, alert_id: str) -> DeliveryOutcome:
    """Deliver one alert once; a failure is recorded, then retried later or dead-lettered."""
    record = d.store.records.record_state(alert_id)
    if record is None or record.status not in WAITING:
        return DeliveryOutcome(alert_id, "skipped")
    s = d.config.settings
    # One worker at a time: the claim lapses only if its holder dies (it is extended while
    # the attempt lives, and the attempt has a hard deadline shorter than the claim).
    ttl = s.delivery_timeout + CLAIM_MARGIN
    token = d.store.records.claim(alert_id, ttl=ttl)
    if token is None:
        return DeliveryOutcome(alert_id, "skipped")      # another worker has it right now
    with _claim_kept(d.store.records, alert_id, token, ttl):
        return _deliver_claimed(d, alert_id, token)


CLAIM_MARGIN = 5.0        # seconds a delivery claim outlives its attempt's deadline


@contextmanager
def _claim_kept(records: Records, alert_id: str, token: str, ttl: float) -> Iterator[None]:
    """Extend the claim every third of its life while the block runs (a DNS lookup that
    hangs cannot be cut by the deadline), so no other worker sends the alert meanwhile."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(ttl / 3):
            try:
                if not records.extend_claim(alert_id, token, ttl):
                    return
            except Exception as exc:           # Redis away: the claim may lapse; say so
                log.warning("alert %s: could not extend the delivery claim: %s", alert_id,
                            exc)
                return

    thread = threading.Thread(target=beat, name=f"claim-{alert_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _deliver_claimed(d: Deliverer, alert_id: str, token: str) -> DeliveryOutcome:
    s = d.config.settings
    # Read the state again under the claim: another task may have delivered it between our
    # first look and the claim (it releases the claim only after recording the delivery).
    record = d.store.records.record_state(alert_id)
    if record is None or record.status not in WAITING:
        d.store.records.release_claim(alert_id, token)
        return DeliveryOutcome(alert_id, "skipped")
    try:
        sub = d.config.subscriber(record.subscriber_id)
    except KeyError:
        d.store.records.mark_failed(alert_id, "subscriber no longer configured",
                                     retry_at=None, channel="none")
        d.store.records.release_claim(alert_id, token)
        return DeliveryOutcome(alert_id, "dead", error="subscriber no longer configured")
    try:
        _send(d, sub, alert_id, record.kind)
        d.store.records.mark_delivered(alert_id, sub.channel)   # before the claim goes: no resend
        d.store.stats.observe("delivery_latency", max(0.0, time.time() - record.created_at))
    except DeliveryError as exc:
        now = time.time()
        failed = decide_failure(attempts=record.attempts, created_at=record.created_at,
                                now=now, error=str(exc), retryable=exc.retryable,
                                retry_after=exc.retry_after, base=s.retry_base_delay,
                                cap=s.retry_max_delay, max_age=s.delivery_max_age_hours * 3600)
        d.store.records.mark_failed(alert_id, failed.error, retry_at=failed.retry_at,
                                     channel=sub.channel)
        log.warning("alert %s to %s (%s) attempt %d: %s", alert_id, sub.id, sub.channel,
                    failed.attempt, exc, extra=alert_fields(
                        alert_id, sub.id, sub.channel, kind=record.kind,
                        attempt=failed.attempt, outcome="dead" if failed.dead else "retrying"))
        if failed.retry_at is None:
            return DeliveryOutcome(alert_id, "dead", error=failed.error)
        return DeliveryOutcome(alert_id, "retrying", failed.retry_at - now, failed.error)
    finally:
        d.store.records.release_claim(alert_id, token)
    log.info("alert %s delivered to %s (%s)", alert_id, sub.id, sub.channel,
             extra=alert_fields(alert_id, sub.id, sub.channel, kind=record.kind,
                                outcome="delivered"))
    return DeliveryOutcome(alert_id, "delivered")


def _send(d: Deliverer, sub: SubscriberConfig, record_id: str, kind: str) -> None:
    """One attempt through the subscriber's channel, within `delivery_timeout` in all. The
    targets of webhooks and chat URLs are untrusted: their connections pass the SSRF guard."""
    s = d.config.settings
    body = _body(d, record_id, kind)
    to = sub.email or f"{sub.id}@localhost"

    def make(body: Body, **kw: Any) -> EmailMessage:
        if body["type"] == "digest":
            return render.digest_email(body, **kw)
        if body["type"] == "feed_problem":
            return render.notice_email(body, **kw)
        return render.email_message(body, **kw)

    guarded = bool(sub.webhook or sub.apprise) and not s.allow_private_networks
    send: Callable[[], object]
    if sub.webhook:
        assert sub.secret is not None
        send = partial(send_webhook, d.http(), sub.webhook, sub.secret, body)
    elif sub.email:
        assert s.smtp_url is not None
        send = partial(send_email, s.smtp_url, make(body, to=to, from_address=s.from_address,
                                                    unsubscribe_url=s.unsubscribe_url),
                       timeout=s.fetch_timeout)
    elif sub.apprise:
        send = partial(send_apprise, sub.apprise, body, timeout=s.fetch_timeout,
                       deadline=s.delivery_timeout)
    else:
        send = partial(write_outbox, d.config.resolve_path(sub.outbox or ""), body,
                       make(body, to=to, from_address=s.from_address))
    attempt(send, target=sub.target, guarded=guarded, seconds=s.delivery_timeout)


def _body(d: Deliverer, record_id: str, kind: str) -> Body:
    """The webhook JSON of an alert (its story's copies read now) or of a digest (built when
    its period closed)."""
    if kind in ("digest", "notice"):
        data = d.store.records.record_data(record_id)
        if data is None:
            raise DeliveryError(record_id, f"{kind} record has no data", retryable=False)
        return cast(Body, data)
    record = d.store.records.load_alert(record_id)
    if record is None:
        raise DeliveryError(record_id, "alert record has no data", retryable=False)
    alert = record.alert
    try:
        feed = d.config.feed(alert.entry.feed_id)
        feed_url, categories = feed.url, feed.categories
    except KeyError:
        feed_url, categories = alert.entry.feed_id, ()
    return render.webhook_body(alert, feed_url, d.store.stories.entries(alert.story_id).values(),
                               categories, feedback.links(d.config.settings, alert))
