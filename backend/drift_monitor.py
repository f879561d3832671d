"""The control plane's background drift work: evaluate every version, keep its state, feed the webhook outbox,
enforce the results retention; and the /metrics collector that reads the last evaluation at scrape time.

A state change (not drifting -> drifting, or back) and its webhook delivery are written in one transaction,
so a restart neither loses nor repeats a change: pending deliveries are sent after the restart, and the
re-evaluation finds the stored state equal to the new one. Each delivery carries its outbox id
(``X-Jetfleet-Delivery``), so a receiver can drop the rare repeat of a report whose acknowledgement was lost.

Each evaluation's report is stored with the state, and /metrics reads the stored reports: every replica exports
the leader's scores, so the series (and an alert on them) live on through a change of leader, and a version no
longer evaluated (its sketches aged out) drops out of them after a few rounds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from jetfleet.backend import drift, results
from jetfleet.backend.drift_schemas import STATISTICS, DriftReport
from jetfleet.backend.jobs_models import DriftState, SketchRow, WebhookDelivery
from jetfleet.backend.leadership import Leadership, NotLeader, SoleLeader
from jetfleet.backend.settings import BackendSettings
from jetfleet.errors import TemporaryError

log = logging.getLogger("jetfleet.backend.drift")
SIGNATURE_HEADER = "X-Jetfleet-Signature"
STANDBY_POLL_S = 1.0  # a standby replica checks this often whether it leads now
DELIVERY_ATTEMPTS = 5  # per round; a delivery still failing waits for the next round (drift_interval)
EXPORTED_ROUNDS = 3  # a stored report is exported while younger than this many rounds (at least EXPORTED_MIN_S)
EXPORTED_MIN_S = 300.0


class DeliveryFailed(TemporaryError):
    """The webhook did not answer 2xx."""


class DriftMonitor:
    """Evaluation, retention and webhook threads; with several replicas they work only on the leader."""

    def __init__(self, sessions: sessionmaker[Session], settings: BackendSettings,
                 leadership: Leadership | None = None) -> None:
        self._sessions = sessions
        self._settings = settings
        self._leadership = leadership or SoleLeader("control-plane")
        self._stop = threading.Event()
        self._wake_sender = threading.Event()
        self._threads: list[threading.Thread] = []
        self.rounds = 0  # completed evaluation rounds

    def pending_deliveries(self) -> int:
        with self._sessions() as session:
            query = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.delivered_at.is_(None))
            return int(session.scalar(query) or 0)

    def reports(self, now: datetime | None = None) -> list[DriftReport]:
        """The stored reports of the versions evaluated lately (by whichever replica led then)."""
        age = max(EXPORTED_ROUNDS * self._settings.drift_interval, EXPORTED_MIN_S)
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=age)
        with self._sessions() as session:
            stored = session.scalars(select(DriftState.report).where(DriftState.evaluated_at >= cutoff)
                                     .order_by(DriftState.model, DriftState.version))
            return [DriftReport.model_validate(report) for report in stored if report]  # none before 0008

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._loop, name="drift-monitor", daemon=True)]
        if self._settings.drift_webhook:
            self._threads.append(threading.Thread(target=self._send_loop, name="drift-webhook", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake_sender.set()
        for thread in self._threads:
            thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._leadership.is_leader():
                self._stop.wait(STANDBY_POLL_S)  # a standby replica: take over within a second of leading
                continue
            try:
                self.run_once()
            except NotLeader as exc:
                log.warning("%s", exc)
            except Exception:  # keep monitoring; the next round retries
                log.exception("drift evaluation failed")
            self._stop.wait(self._settings.drift_interval)

    def run_once(self) -> None:
        now = datetime.now(timezone.utc)
        self.prune(now)
        with self._sessions() as session:
            versions = drift.versions_with_sketches(session)
        for model, version in versions:
            with self._sessions.begin() as session:
                self._leadership.fence(session)
                report = drift.evaluate(session, model, version, self._settings)
                if report.reference != "collecting" and self._record_state(session, report, now):
                    self._wake_sender.set()
        self.rounds += 1

    def prune(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self._settings.results_retention)
        with self._sessions.begin() as session:
            self._leadership.fence(session)
            removed = results.prune(session, cutoff)
            session.execute(delete(SketchRow).where(SketchRow.received_at < cutoff))
        if removed:
            log.info("retention: removed %d results received before %s", removed, cutoff.isoformat())

    def _record_state(self, session: Session, report: DriftReport, now: datetime) -> bool:
        """Store the version's state and report; on a change queue a webhook delivery (same transaction).
        True if queued."""
        stored = report.model_dump(mode="json")
        state = session.get(DriftState, (report.model, report.version))
        if state is None:
            session.add(DriftState(model=report.model, version=report.version, drifting=report.drift,
                                   changed_at=now, evaluated_at=now, report=stored))
            changed = report.drift  # a first state of "not drifting" is no news
        else:
            changed = state.drifting != report.drift
            state.evaluated_at, state.report = now, stored
            if changed:
                state.drifting, state.changed_at = report.drift, now
        if not changed:
            return False
        event = "drift" if report.drift else "recovered"
        log.warning("%s version %d: %s", report.model, report.version,
                    "inputs drift" if report.drift else "inputs no longer drift")
        if not self._settings.drift_webhook:
            return False
        session.add(WebhookDelivery(model=report.model, version=report.version, event=event,
                                    payload=webhook_payload(report, event, now), created_at=now, attempts=0))
        return True

    # -- webhook ----------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                if not self._leadership.is_leader():
                    self._stop.wait(STANDBY_POLL_S)
                    continue
                try:
                    self.send_pending(client)
                except Exception:
                    log.exception("drift webhook round failed")
                self._wake_sender.wait(self._settings.drift_interval)
                self._wake_sender.clear()

    def send_pending(self, client: httpx.Client) -> None:
        with self._sessions() as session:
            pending = list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.delivered_at.is_(None))
                                           .order_by(WebhookDelivery.id)))
        for delivery in pending:  # in order: a "recovered" never overtakes its "drift"
            if self._stop.is_set() or not self._deliver(client, delivery):
                return

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop interrupts the backoff

    def _deliver(self, client: httpx.Client, delivery: WebhookDelivery) -> bool:
        body = json.dumps({**delivery.payload, "delivery_id": delivery.id}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Jetfleet-Event": delivery.event,
                   "X-Jetfleet-Delivery": str(delivery.id)}
        if self._settings.webhook_secret:
            headers[SIGNATURE_HEADER] = "sha256=" + sign(body, self._settings.webhook_secret)
        attempts = 0
        error: str | None = None
        try:
            for attempt in Retrying(stop=stop_after_attempt(DELIVERY_ATTEMPTS), reraise=True,
                                    wait=wait_exponential(multiplier=0.5, max=30), sleep=self._sleep,
                                    retry=retry_if_exception_type((DeliveryFailed, httpx.TransportError))):
                with attempt:
                    attempts += 1
                    _post(client, self._settings.drift_webhook or "", body, headers)
        except (DeliveryFailed, httpx.TransportError) as exc:
            error = str(exc) or type(exc).__name__
            log.warning("drift webhook delivery %d failed %d times: %s", delivery.id, attempts, error)
        with self._sessions.begin() as session:
            row = session.get(WebhookDelivery, delivery.id)
            if row is not None:
                row.attempts += attempts
                row.last_error = error
                row.delivered_at = None if error else datetime.now(timezone.utc)
        return error is None


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    response = client.post(url, content=body, headers=headers)
    if not response.is_success:
        raise DeliveryFailed(f"{url} answered {response.status_code}")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_payload(report: DriftReport, event: str, now: datetime) -> dict[str, Any]:
    full = report.model_dump(mode="json")
    return {"event": event, "model": report.model, "version": report.version, "drift": report.drift,
            "evaluated_at": now.isoformat(), "features": [f for f in full["features"] if f["drift"]],
            "statistics": full["features"], "devices": report.devices,
            "window": {"start": full["window_start"], "end": full["window_end"],
                       "seconds": report.window_seconds, "min_windows": report.min_windows}}


class DriftCollector(Collector):
    """jetfleet_drift_score / _threshold / _detected from the stored last evaluations, read at scrape time."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        yield CounterMetricFamily("jetfleet_drift_evaluation_rounds", "Completed drift evaluation rounds",
                                  value=self._monitor.rounds)
        yield GaugeMetricFamily("jetfleet_drift_webhook_pending", "Drift reports not yet delivered to the webhook",
                                value=self._monitor.pending_deliveries())
        labels = ["model", "version", "input", "index", "statistic"]
        score = GaugeMetricFamily("jetfleet_drift_score", "Drift statistic of an input feature against its "
                                  "reference, over the recent windows (psi, js, ks, wasserstein)", labels=labels)
        threshold = GaugeMetricFamily("jetfleet_drift_threshold", "The statistic's null-calibrated threshold "
                                      "for the current sample sizes", labels=labels)
        detected = GaugeMetricFamily("jetfleet_drift_detected", "1 when the model version's inputs drift "
                                     "(a feature flagged in enough recent windows)", labels=["model", "version"])
        for report in self._monitor.reports():  # stored only once a reference exists (never "collecting")
            version = str(report.version)
            detected.add_metric([report.model, version], 1.0 if report.drift else 0.0)
            for feature in report.features:
                for statistic in STATISTICS:
                    key = [report.model, version, feature.input, str(feature.index), statistic]
                    value, limit = getattr(feature, statistic), getattr(feature, f"{statistic}_threshold")
                    if value is not None:
                        score.add_metric(key, value)
                    if limit is not None:
                        threshold.add_metric(key, limit)
        yield score
        yield threshold
        yield detected
