"""The core's sales sensor: one small request per tick, one intraday run per new sale seen.

Each tick asks the core for its newest sale (``GET /sales/recent?limit=1``), never a listing.
The cursor (JSON, stored by Dagster, so it survives restarts) holds the core's day and the
newest sale id seen; a newer sale, or a new day, requests one ``intraday_job`` run keyed by
(day, newest id), so two ticks never start the same refresh twice. The logged-in client is kept
between ticks in the code server's memory (keyed by URL and account), never in the cursor; its
timeouts are short and its retries few, so a core that is down costs a tick seconds. A core
that is down or refuses the account makes the tick skip with the reason; it never raises.

Optional outage alert (``SALESFLOW_OUTAGE_ALERT_HOURS``, unset or 0: off): once the newest
sale is that many hours old, one intraday run is requested per hour of the gap; its asset
decides, from the warehouse, whether enough sales were expected in the last hours to tell the
alert recipients, and tells each gap once.

The poll interval is ``SALESFLOW_INTRADAY_POLL_SECONDS`` (default 300), read when the code
location loads. Sensors never open the warehouse.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import dagster as dg

from assets.intraday import intraday_job
from resources import CoreApiResource
from salesflow.core_client import CoreClient
from salesflow.errors import CoreApiError, CoreAuthError
from salesflow.intraday import OutageSettings
from salesflow.settings import whole_number_from_env

POLL_ENV = "SALESFLOW_INTRADAY_POLL_SECONDS"
DEFAULT_POLL_SECONDS = 300
DAY_TAG, SALE_TAG, OUTAGE_TAG = "salesflow/core_day", "salesflow/newest_sale", "salesflow/outage_since"
# A poll must not hold the daemon: a few seconds per request and one attempt (the client's
# retries nest inside its login's, so two attempts would mean four connections to a core that
# is down); a failed poll is tried again at the next tick.
POLL_TIMEOUT_S = 5.0
POLL_CONNECT_TIMEOUT_S = 2.0
POLL_ATTEMPTS = 1

_clients: dict[tuple[str, str], CoreClient] = {}
_clients_lock = threading.Lock()


def poll_seconds(environ=None) -> int:
    return whole_number_from_env(POLL_ENV, DEFAULT_POLL_SECONDS, minimum=10, unit="seconds",
                                 environ=environ)


def outage_hours(environ=None) -> int:
    """Hours without a sale before the outage alert looks at it; 0 (the default) is off."""
    return OutageSettings.from_env(environ).hours


def public_url(url: str) -> str:
    """The URL without any user or password in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def new_client(core: CoreApiResource) -> CoreClient:
    return CoreClient(core.base_url, core.phone, core.password, timeout_s=POLL_TIMEOUT_S,
                      connect_timeout_s=POLL_CONNECT_TIMEOUT_S, max_attempts=POLL_ATTEMPTS,
                      max_elapsed_s=2 * POLL_TIMEOUT_S,
                      timezone=core.timezone)


def cached_client(core: CoreApiResource) -> CoreClient:
    """The logged-in client of this URL and account, kept between ticks (memory only)."""
    key = (core.base_url, core.phone)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = new_client(core)
        return client


def forget_clients() -> None:
    """Drop every kept client (a new process starts without any)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def _forget(core: CoreApiResource) -> None:
    with _clients_lock:
        client = _clients.pop((core.base_url, core.phone), None)
    if client is not None:
        client.close()


WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]


def refreshes_waiting(context: dg.SensorEvaluationContext) -> int:
    """intraday_job runs requested but not started (queued behind a backfill, say): while one
    waits, another would only repeat it, so the tick neither polls nor requests."""
    try:
        instance = context.instance
    except Exception:  # noqa: BLE001 - a context built without an instance
        return 0
    return instance.get_runs_count(dg.RunsFilter(job_name=intraday_job.name, statuses=WAITING))


def read_cursor(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def poll_core(client: CoreClient) -> tuple[str, int | None, datetime | None, datetime]:
    """(core day, newest sale id, its time, core time) from one ``/sales/recent?limit=1``."""
    answer = client.get_json("/sales/recent", {"limit": 1})
    now = client.server_now()
    newest = answer[0] if isinstance(answer, list) and answer else None
    if newest is None:
        return now.date().isoformat(), None, None, now
    stamp = None
    try:
        stamp = datetime.fromisoformat(str(newest.get("saleDate")))
    except ValueError:
        pass
    return now.date().isoformat(), int(newest["id"]), stamp, now


def decide(cursor: dict, day: str, newest: int | None, newest_ts: datetime | None, now: datetime,
           *, outage_after_hours: int = 0) -> tuple[list[dg.RunRequest], dict, str]:
    """The runs to request, the next cursor and why, from the previous cursor and one poll.

    A new sale (or a new day) is one refresh, keyed by (day, newest sale id). A gap of
    ``outage_after_hours`` or more without a sale is looked at once per hour while it lasts,
    keyed by (last sale, whole hours since): whether sales were expected depends on which hours
    the gap covers (a gap that begins at closing time becomes an outage only once the shop
    should be trading again), and the alerts ledger tells each gap once."""
    seen = cursor.get("sale_id")
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    if cursor.get("day") != day or (newest is not None and (seen is None or newest > seen)):
        reasons.append("first poll" if not cursor else
                       "a new day" if cursor.get("day") != day and newest == seen else
                       f"new sales up to {newest}")
        requests.append(dg.RunRequest(run_key=f"today:{day}:{newest or 0}",
                                      tags={DAY_TAG: day, SALE_TAG: str(newest or 0)}))
    if outage_after_hours and newest_ts is not None and \
            now - newest_ts >= timedelta(hours=outage_after_hours):
        gap_hours = int((now - newest_ts) // timedelta(hours=1))
        requests.append(dg.RunRequest(run_key=f"outage:{newest}:{gap_hours}",
                                      tags={DAY_TAG: day, SALE_TAG: str(newest), OUTAGE_TAG: str(newest_ts)}))
        reasons.append(f"no sale for {gap_hours} hours, since {newest_ts:%Y-%m-%d %H:%M}")
    next_cursor = {"day": day, "sale_id": newest if newest is not None else seen}
    return requests, next_cursor, "; ".join(reasons) or "nothing new"


def build_core_sales_sensor(*, name: str = "core_sales_sensor",
                            minimum_interval_seconds: int | None = None,
                            default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
                            ) -> dg.SensorDefinition:
    interval = minimum_interval_seconds or poll_seconds()
    outage_after = outage_hours()

    @dg.sensor(
        name=name,
        job=intraday_job,
        minimum_interval_seconds=interval,
        default_status=default_status,
        description=f"Every {interval} s asks the core for its newest sale (one small request) and "
        "requests an intraday_job run when it is new: today's figures follow the core.",
    )
    def _core_sales_sensor(context: dg.SensorEvaluationContext, core: CoreApiResource):
        url = public_url(core.base_url or "")
        waiting = refreshes_waiting(context)
        if waiting:
            return dg.SkipReason(f"{waiting} intraday_job run(s) already waiting for the warehouse: "
                                 "the waiting refresh reads every sale made until it starts")
        try:
            client = cached_client(core)
            day, newest, newest_ts, now = poll_core(client)
        except (CoreApiError, CoreAuthError) as exc:
            _forget(core)
            return dg.SkipReason(f"the core at {url} could not be polled: {exc}")
        except Exception as exc:  # noqa: BLE001 - a tick must never fail the daemon
            _forget(core)
            return dg.SkipReason(f"the core at {url} could not be polled: {type(exc).__name__}")
        requests, cursor, why = decide(read_cursor(context.cursor), day, newest, newest_ts, now,
                                       outage_after_hours=outage_after)
        if requests:
            context.log.info(f"{why}: requesting {', '.join(r.run_key for r in requests)}")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True),
                               skip_reason=None if requests else
                               f"{why}: newest sale {newest} on the core's day {day}")

    return _core_sales_sensor


core_sales_sensor = build_core_sales_sensor()
core_sales_sensors = [core_sales_sensor]
