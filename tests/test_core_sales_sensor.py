"""core_sales_sensor: one small request per poll, one intraday run per new sale, a cursor that
survives a restart, and a core that is down makes it skip with a message."""

from __future__ import annotations

import json
import socket
from datetime import datetime

import dagster as dg
from dagster._core.utils import make_new_run_id
import duckdb
import pytest

from emulator.clock import FixedClock
from emulator.testing import running_emulator
from pipelines.definitions import defs
from resources import CoreApiResource
from salesflow.core_client import CoreClient
from sensors import core_sales
from sensors.core_sales import build_core_sales_sensor, core_sales_sensor, forget_clients
from tests.conftest import pipeline_resources

TRADING = datetime(2025, 7, 1, 14, 0)
SKUS = ("BAK-00001", "BEV-00001")


@pytest.fixture(autouse=True)
def _fresh_process():
    """Each test starts as a new code server would: no kept client."""
    forget_clients()
    yield
    forget_clients()


class Poller:
    """Evaluates the sensor tick after tick, carrying the cursor as the daemon stores it."""

    def __init__(self, core: CoreApiResource, sensor=core_sales_sensor):
        self.core = core
        self.sensor = sensor
        self.cursor: str | None = None
        self.skips: list[str] = []

    def tick(self) -> list[dg.RunRequest]:
        ctx = dg.build_sensor_context(cursor=self.cursor, resources={"core": self.core})
        data = self.sensor.evaluate_tick(ctx)
        if data.cursor is not None:
            self.cursor = data.cursor
        if data.skip_message:
            self.skips.append(data.skip_message)
        return list(data.run_requests or [])


def sell(emu, *quantities: int) -> list[int]:
    with CoreClient(emu.url, *emu.admin) as client:
        return [client.post_json("/sales", {"items": [{"sku": SKUS[i % 2], "quantity": q}]}).json()["id"]
                for i, q in enumerate(quantities)]


def request_log(emu):
    """Every request the emulator receives from now on (a hold-free planned 'fault')."""
    return emu.app.state.faults.plan(None, path="", times=10**9)


def run_intraday(resources: dict, request: dg.RunRequest | None = None):
    result = defs.resolve_job_def("intraday_job").execute_in_process(
        resources=resources, tags=dict(request.tags) if request else None, raise_on_error=False)
    assert result.success
    return result


def today_in_core(emu) -> tuple[int, int, str]:
    with CoreClient(emu.url, *emu.admin) as client:
        sales = client.get_json("/sales/today")
    from decimal import Decimal

    units = sum(i["quantity"] for s in sales for i in s["items"])
    revenue = sum(Decimal(str(s["totalAmount"])) for s in sales)
    return len(sales), units, f"{revenue:.2f}"


def test_new_sales_request_a_run_that_brings_today_in_line_and_quiet_polls_request_nothing(
        tmp_path, core_state):
    warehouse = tmp_path / "w.duckdb"
    with running_emulator(core_state, clock=FixedClock(TRADING)) as emu:
        resources = pipeline_resources(emu, warehouse)
        poller = Poller(resources["core"])
        sell(emu, 1, 2, 3)
        (request,) = poller.tick()
        assert request.job_name in (None, "intraday_job")
        run_intraday(resources, request)
        con = duckdb.connect(str(warehouse), read_only=True)
        row = con.execute("SELECT orders, units, CAST(revenue AS VARCHAR), provisional "
                          "FROM marts.daily_sales WHERE sale_date = ?", [TRADING.date()]).fetchone()
        con.close()
        assert row == (*today_in_core(emu), True)
        # five more polls with nothing new: nothing requested
        assert [poller.tick() for _ in range(5)] == [[]] * 5
        assert "nothing new" in poller.skips[-1]
        # a refresh again (as the same run key can never start twice) duplicates nothing
        run_intraday(resources)
        (new_sale,) = sell(emu, 4)
        (again,) = poller.tick()
        assert again.run_key != request.run_key and again.run_key.endswith(f":{new_sale}")
        run_intraday(resources, again)
        run_intraday(resources, again)
        con = duckdb.connect(str(warehouse), read_only=True)
        orders, units, revenue = today_in_core(emu)
        assert orders == 4
        assert con.execute("SELECT count(*), count(DISTINCT sale_id) FROM raw.sales WHERE sale_date = ?",
                           [TRADING.date()]).fetchone() == (4, 4)
        assert con.execute("SELECT count(*) FROM raw.sale_items i JOIN raw.sales s USING (sale_id) "
                           "WHERE s.sale_date = ?", [TRADING.date()]).fetchone()[0] == 4
        assert con.execute("SELECT count(*), sum(orders), sum(units), CAST(sum(revenue) AS VARCHAR) "
                           "FROM marts.daily_sales WHERE sale_date = ?",
                           [TRADING.date()]).fetchone() == (1, orders, units, revenue)
        assert con.execute("SELECT count(*) FROM marts.product_daily_sales WHERE sale_date = ? "
                           "GROUP BY sku HAVING count(*) > 1", [TRADING.date()]).fetchall() == []
        assert con.execute("SELECT count(*), max(orders) FROM marts.today").fetchone() == (1, 4)
        con.close()


def test_the_cursor_survives_a_restart(tmp_path, core_state):
    with running_emulator(core_state, clock=FixedClock(TRADING)) as emu:
        core = pipeline_resources(emu, tmp_path / "w.duckdb")["core"]
        first = Poller(core)
        sell(emu, 1)
        assert len(first.tick()) == 1
        stored = first.cursor
        assert json.loads(stored)["day"] == "2025-07-01"
        # nothing secret in what Dagster stores
        assert core.password not in stored and core.phone not in stored
        forget_clients()  # a new code server process
        restarted = Poller(core)
        restarted.cursor = stored
        assert restarted.tick() == []
        (sale,) = sell(emu, 2)
        (request,) = restarted.tick()
        assert request.run_key == f"today:2025-07-01:{sale}"
        # the core's new day is one refresh (today's figures start again from zero)
        emu.clock.set(datetime(2025, 7, 2, 0, 5))
        (next_day,) = restarted.tick()
        assert next_day.run_key == f"today:2025-07-02:{sale}"
        assert restarted.tick() == []


def test_a_poll_with_nothing_new_is_one_request_and_no_run(tmp_path, core_state):
    with running_emulator(core_state, clock=FixedClock(TRADING)) as emu:
        poller = Poller(pipeline_resources(emu, tmp_path / "w.duckdb")["core"])
        sell(emu, 1)
        log = request_log(emu)
        assert len(poller.tick()) == 1  # the first poll logs in
        assert [p for _, p in log.requests] == ["/api/v1/auth/login", "/api/v1/sales/recent"]
        before = log.seen
        assert poller.tick() == []
        assert log.requests[before:] == [("GET", "/api/v1/sales/recent")]


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_core_that_is_down_makes_the_sensor_skip_with_a_message(monkeypatch):
    attempts = []

    class Counting(core_sales.CoreClient):
        def __init__(self, *args, **kwargs):
            import httpx

            inner = httpx.HTTPTransport()

            class Transport(httpx.BaseTransport):
                def handle_request(self, request):
                    attempts.append(request.url.path)
                    return inner.handle_request(request)

            super().__init__(*args, transport=Transport(), **kwargs)

    monkeypatch.setattr(core_sales, "CoreClient", Counting)
    url = f"http://127.0.0.1:{_closed_port()}"
    core = CoreApiResource(base_url=url, phone="+15550001111", password="s3cret-pw")
    poller = Poller(core)
    assert poller.tick() == []
    (message,) = poller.skips
    assert url in message and "could not be polled" in message and "unreachable" in message
    assert "s3cret-pw" not in message
    # few attempts, so a down core costs the daemon seconds, not minutes
    assert 1 <= len(attempts) <= core_sales.POLL_ATTEMPTS
    assert poller.cursor is None


def test_a_core_that_refuses_the_account_makes_the_sensor_skip(tmp_path, core_state):
    with running_emulator(core_state, clock=FixedClock(TRADING)) as emu:
        core = CoreApiResource(base_url=emu.url, phone=emu.admin[0], password="not-the-password")
        poller = Poller(core)
        assert poller.tick() == []
        (message,) = poller.skips
        assert emu.url in message and "refused" in message and "not-the-password" not in message


def test_the_poll_interval_comes_from_the_environment(monkeypatch):
    assert core_sales.poll_seconds({}) == 300
    assert core_sales_sensor.minimum_interval_seconds == 300
    monkeypatch.setenv(core_sales.POLL_ENV, "60")
    assert build_core_sales_sensor().minimum_interval_seconds == 60
    with pytest.raises(ValueError, match=core_sales.POLL_ENV):
        core_sales.poll_seconds({core_sales.POLL_ENV: "soon"})
    assert core_sales_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_while_a_refresh_waits_for_the_warehouse_the_sensor_neither_polls_nor_requests(core_state):
    """During a backfill the refresh requested earlier waits in the queue; another one would only
    repeat it, so the tick asks the core nothing and requests nothing until it has started."""
    with running_emulator(core_state, clock=FixedClock(TRADING)) as emu, \
            dg.DagsterInstance.ephemeral() as instance:
        core = CoreApiResource(base_url=emu.url, phone=emu.admin[0], password=emu.admin[1])
        sensor = core_sales_sensor

        def tick(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(
                cursor=cursor, resources={"core": core}, instance=instance))

        first = tick(None)
        assert len(first.run_requests) == 1
        queued = instance.add_run(dg.DagsterRun(job_name="intraday_job", run_id=make_new_run_id(),
                                                status=dg.DagsterRunStatus.NOT_STARTED))
        sell(emu, 1, 2)
        log = request_log(emu)
        waiting = tick(first.cursor)
        assert not waiting.run_requests and log.requests == []
        assert "already waiting" in waiting.skip_message
        instance.report_run_failed(queued)  # it ended: the next tick polls and sees the sales
        after = tick(first.cursor)
        assert len(after.run_requests) == 1 and len(log.requests) == 1
