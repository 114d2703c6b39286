"""Imports are events: a committed import reports the raw assets and days it wrote, the marts of
exactly those days follow (in the same command for `salesflow import`, through the automation
conditions otherwise), the exports follow the marts once, and the import's e-mail names the
days rebuilt."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.marts import daily_marts
from pipelines.definitions import defs
from pipelines.imports_job import (
    EXPORTS, FOLLOW_UP, IMPORT_OP, follow_up_plan, import_job, import_run_config, run_import_file,
)
from pipelines.partitions import daily_partitions
from pipelines.runner import run_daily
from resources import MailerResource
from salesflow.imports.pipeline import ImportOutcome
from salesflow.notices import rebuilt_facts
from tests.browser import assert_reads_on_phone
from tests.conftest import SHOP_END, pipeline_resources
from tests.imports.fixtures import ImportEnv, module_core  # noqa: F401
from tests.test_imports_dagster import resources_for

DAYS = [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)]
OPS = "ops@shop.example"
DAILY_MARTS = dg.AssetSelection.assets(daily_marts)


@pytest.fixture(scope="module")
def loaded_warehouse(tmp_path_factory, module_core) -> Path:  # noqa: F811
    """The small shop's history up to SHOP_END, as the daily run leaves it (built once)."""
    folder = tmp_path_factory.mktemp("loaded")
    warehouse = folder / "warehouse.duckdb"
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_daily(as_of=SHOP_END, instance=instance, warehouse_path=warehouse,
                           resources=pipeline_resources(module_core, warehouse), reports=False)
    assert result.success, result.summary()
    return warehouse


@pytest.fixture
def env(tmp_path, module_core, loaded_warehouse) -> ImportEnv:  # noqa: F811
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    shutil.copyfile(loaded_warehouse, home / "data" / "warehouse.duckdb")
    return ImportEnv(home, module_core)


def _resources(env: ImportEnv) -> dict:
    """The import job's resources, with a mailer that tells ops of every import."""
    return {**resources_for(env),
            "mailer": MailerResource(ops_recipients=OPS, sender="SalesFlow <reports@shop.example>")}


def _history_file(env: ImportEnv, folder: Path) -> tuple[Path, dict[date, Decimal]]:
    """A sales_history file with two sales on each of DAYS; returns it and its revenue per day."""
    a, b = sorted(env.products().values(), key=lambda p: p["sku"])[:2]
    lines = ["date,time,receipt,sku,qty,unit_price"]
    revenue: dict[date, Decimal] = {}
    for n, day in enumerate(DAYS):
        lines.append(f"{day},09:{10 + n},H{n}a,{a['sku']},{n + 1},12.50")
        lines.append(f"{day},11:{20 + n},H{n}b,{b['sku']},2,3.05")
        revenue[day] = Decimal("12.50") * (n + 1) + Decimal("6.10")
    path = folder / "old till march.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    return path, revenue


def _snapshot(warehouse: Path) -> dict[str, dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        daily = {r[0]: r[1:] for r in con.execute(
            "SELECT sale_date, orders, units, revenue FROM marts.daily_sales").fetchall()}
        kpis = {(r[0], r[1]): r[2:] for r in con.execute(
            'SELECT as_of, "window", revenue, orders, units FROM marts.kpis').fetchall()}
        products = {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT sale_date, sku, units, revenue FROM marts.product_daily_sales").fetchall()}
        profit = {r[0]: r[1:] for r in con.execute(
            "SELECT month, expenses, net_profit FROM marts.profit_monthly").fetchall()}
    finally:
        con.close()
    return {"daily": daily, "kpis": kpis, "products": products, "profit": profit}


def _changed(before: dict, after: dict) -> set:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _outbox(env: ImportEnv) -> list[email.message.EmailMessage]:
    folder = env.home / "exports" / "outbox"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.glob("*.eml"))]


def _text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


# -- `salesflow import`: the warehouse reflects the file when it returns -----------------------
def test_a_history_import_rebuilds_exactly_its_days_before_the_command_returns(env, tmp_path):
    source, revenue = _history_file(env, tmp_path)
    before = _snapshot(env.warehouse)
    exports = env.home / "exports" / "marts" / "marts.daily_sales.csv"
    with dg.DagsterInstance.ephemeral() as instance:
        ok, outcome = run_import_file(source, resources=_resources(env), instance=instance)
    assert ok and outcome["status"] == "committed", outcome["text"]
    after = _snapshot(env.warehouse)

    # marts.daily_sales: exactly the three days changed, each by the file's sales
    assert _changed(before["daily"], after["daily"]) == set(DAYS)
    for day in DAYS:
        orders, units, rev = before["daily"][day]
        assert after["daily"][day][0] == orders + 2
        assert after["daily"][day][2] == rev + revenue[day]
    # the KPIs as of exactly those days, every window; the products of those days only
    assert {as_of for as_of, _ in _changed(before["kpis"], after["kpis"])} == set(DAYS)
    assert {d for d, _ in _changed(before["products"], after["products"])} == set(DAYS)
    assert after["kpis"][(DAYS[0], "7d")][0] == before["kpis"][(DAYS[0], "7d")][0] + revenue[DAYS[0]]
    # the month's profit follows (a snapshot mart) and the exports carry the new figures
    assert _changed(before["profit"], after["profit"]) == {date(2025, 3, 1)}
    assert f"{DAYS[0]}," in exports.read_text() and str(after["daily"][DAYS[0]][2]) in exports.read_text()

    # the output says what was rebuilt: one partition-range run for the three days
    assert outcome["days"] == [d.isoformat() for d in DAYS]
    ranged = [r for r in outcome["rebuilt"] if r["first"] is not None]
    assert [(r["first"], r["last"], r["success"]) for r in ranged] == [("2025-03-03", "2025-03-05", True)]
    assert "rebuilt for 2025-03-03..2025-03-05: " in outcome["text"]
    assert "marts/daily_sales" in outcome["text"] and "exports/marts" in outcome["text"]

    # the e-mail names the days rebuilt, and reads on a phone
    [msg] = _outbox(env)
    assert "3 - 5 March 2025" in _text(msg) and "Days being rebuilt" in _text(msg)
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "Days being rebuilt" in html and "3 - 5 March 2025" in html
    assert_reads_on_phone(msg, tmp_path, "import-days-rebuilt")


def test_an_expenses_import_changes_monthly_profit_in_the_same_command(env, tmp_path):
    source = tmp_path / "expenses may.csv"
    source.write_text("date,amount,category\r\n2025-05-10,410.00,Rent\r\n2025-05-20,89.90,Energy\r\n")
    before = _snapshot(env.warehouse)
    with dg.DagsterInstance.ephemeral() as instance:
        ok, outcome = run_import_file(source, resources=_resources(env), instance=instance)
    assert ok and outcome["status"] == "committed", outcome["text"]
    after = _snapshot(env.warehouse)
    may = date(2025, 5, 1)
    assert _changed(before["profit"], after["profit"]) == {may}
    assert after["profit"][may][0] == (before["profit"][may][0] or 0) + Decimal("499.90")
    assert after["profit"][may][1] == before["profit"][may][1] - Decimal("499.90")
    assert before["daily"] == after["daily"] and before["kpis"] == after["kpis"]  # no day rebuilt
    assert [r["first"] for r in outcome["rebuilt"]] == [None]
    [msg] = _outbox(env)
    assert "Being rebuilt" in _text(msg) and "Monthly profit" in _text(msg)
    assert "Days being rebuilt" not in _text(msg)


# -- the automation: the import run's events request exactly the affected partitions ------------
def _requests(tick) -> dict[str, set[str | None]]:
    """What the tick requests: asset key -> partition keys (None: unpartitioned)."""
    out = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        partitions = tick.get_requested_partitions(key)
        if partitions:
            out[key.to_user_string()] = set(partitions)
    return out


def _land(instance, requests: dict[str, set[str | None]]) -> None:
    """What the requested runs leave behind: each asset of each partition materialized, in its
    own run, with its checks passed."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.utils import make_new_run_id

    graph = defs.resolve_asset_graph()
    run_id = make_new_run_id()
    for key_text, partitions in requests.items():
        key = dg.AssetKey.from_user_string(key_text)
        for part in partitions:
            instance.report_dagster_event(DagsterEvent(
                DagsterEventType.ASSET_MATERIALIZATION.value, job_name="automation",
                event_specific_data=StepMaterializationData(
                    dg.AssetMaterialization(asset_key=key, partition=part))), run_id=run_id)
            for check_key in graph.get_check_keys_for_assets({key}):
                instance.report_dagster_event(DagsterEvent(
                    DagsterEventType.ASSET_CHECK_EVALUATION.value, job_name="automation",
                    event_specific_data=dg.AssetCheckEvaluation(
                        asset_key=key, check_name=check_key.name, passed=True, partition=part)),
                    run_id=run_id)


# The inputs of the unpartitioned marts, which wait for every day of them.
ALL_DAYS = {"raw/sales", "marts/daily_sales", "marts/customer_daily"}


def _history(instance) -> None:
    """What the daily job's backfill left: every unpartitioned asset, the inputs of the
    unpartitioned marts for every day, and every daily asset for DAYS and the latest day (the
    others' history plays no part here and would only slow the test down); the checks of
    DAYS and the latest day passed."""
    graph = defs.resolve_asset_graph()
    latest = daily_partitions.get_last_partition_key()
    some = sorted({d.isoformat() for d in DAYS} | {latest})
    every = daily_partitions.get_partition_keys()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        if node.partitions_def is None:
            parts = [None]
        elif node.partitions_def == daily_partitions:
            parts = every if key.to_user_string() in ALL_DAYS else some
        else:
            continue
        for part in parts:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=part))
        for check_key in graph.get_check_keys_for_assets({key}):  # passed on the latest data
            for part in parts if len(parts) < 10 else some:
                instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                    asset_key=key, check_name=check_key.name, passed=True, partition=part))


def _keys(selection: dg.AssetSelection) -> set[str]:
    return {k.to_user_string() for k in selection.resolve(defs.resolve_asset_graph())}


def _import(env: ImportEnv, instance, source: Path) -> dict:
    target = env.layout.inbox / source.name
    env.layout.ensure(templates=False)
    shutil.copyfile(source, target)
    result = import_job.execute_in_process(run_config=import_run_config(source.name), instance=instance,
                                           resources=_resources(env))
    assert result.success
    return result.output_for_node(IMPORT_OP)


def test_the_tick_after_a_history_import_requests_exactly_its_days_then_the_exports_once(env, tmp_path):
    follow = FOLLOW_UP["sales_history"]
    day_keys = {d.isoformat() for d in DAYS}
    latest = daily_partitions.get_last_partition_key()
    with dg.instance_for_test() as instance:  # on disk, as the daemon keeps it
        _history(instance)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert _requests(tick) == {}
        source, _ = _history_file(env, tmp_path)
        out = _import(env, instance, source)
        assert out["status"] == "committed" and out["days"] == sorted(day_keys)
        # the run reported raw/sales and raw/sale_items for exactly the three days
        for key in (["raw", "sales"], ["raw", "sale_items"]):
            records = instance.fetch_materializations(dg.AssetKey(key), limit=10).records
            assert {r.partition_key for r in records if r.run_id} >= day_keys
            assert sorted(r.partition_key for r in records
                          if r.asset_materialization.metadata.get("import_sha256")) == sorted(day_keys)

        ticks = _follow(instance, tick)
        # the daily marts of exactly those days first, then the as-of marts (KPIs as of those
        # days) once those are in and checked, and the snapshot marts; then the exports, once
        assert ticks[0] == {k: day_keys for k in _keys(DAILY_MARTS)}
        assert ticks[1] == {**{k: day_keys for k in _keys(follow.days) - _keys(DAILY_MARTS)},
                            **{k: {None} for k in _keys(follow.whole) - _keys(EXPORTS)}}
        # the latest daily report is written again (it shows the month's profit; its e-mail
        # went out once already); no forecast, anomaly, alert or other day follows
        assert ticks[2] == {"exports/marts": {None}, "reports/daily": {latest}}
        assert ticks[3:] == [{}]
        requested = {(k, p) for t in ticks for k, parts in t.items() for p in parts}
        assert {(k, p) for k, p in requested if not k.startswith("reports/")} == {
            *((k, d) for k in _keys(follow.days) for d in day_keys),
            *((k, None) for k in _keys(follow.whole))}


def _follow(instance, tick, n: int = 4) -> list[dict[str, set[str | None]]]:
    """The next ``n`` ticks' requests, each landed (materialized, checks passed) before the next."""
    out = []
    for _ in range(n):
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        requested = _requests(tick)
        out.append(requested)
        _land(instance, requested)
        if not requested:
            break
    return out


def test_the_tick_after_an_expenses_import_requests_the_profit_marts_not_a_day(env, tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        _history(instance)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        source = tmp_path / "expenses.csv"
        source.write_text("date,amount,category\r\n2025-05-10,410.00,Rent\r\n")
        assert _import(env, instance, source)["status"] == "committed"
        [record] = instance.fetch_materializations(dg.AssetKey(["raw", "expenses"]), limit=5).records
        assert record.run_id
        ticks = _follow(instance, tick)
        assert ticks[0] == {k: {None} for k in _keys(FOLLOW_UP["expenses"].whole) - _keys(EXPORTS)}
        assert ticks[1] == {"exports/marts": {None},
                            "reports/daily": {daily_partitions.get_last_partition_key()}}
        assert ticks[2:] == [{}]


def test_exports_follow_a_changed_mart_once_and_not_before_the_others_are_in():
    latest = daily_partitions.get_last_partition_key()
    with dg.DagsterInstance.ephemeral() as instance:
        _history(instance)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        # the daily marts of the latest day land; the as-of marts are still to follow
        _land(instance, {"marts/daily_sales": {latest}, "marts/product_daily_sales": {latest},
                         "marts/customer_daily": {latest}})
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        first = _requests(tick)
        assert first.get("marts/kpis") == {latest} and "exports/marts" not in first
        _land(instance, first)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        second = _requests(tick)
        _land(instance, second)
        exports = [t for t in (first, second) if "exports/marts" in t]
        for _ in range(3):
            tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
            requests = _requests(tick)
            if "exports/marts" in requests:
                exports.append(requests)
            _land(instance, requests)
        assert len(exports) == 1


def test_a_lead_times_import_rebuilds_the_latest_reorder_list_and_customers_nothing(env, tmp_path):
    sku = sorted(env.products())[0]
    source = tmp_path / "lead_times.csv"
    source.write_text(f"sku,lead_time_days\r\n{sku},9\r\n")
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,name\r\nC-1,Ada\r\n")
    with dg.DagsterInstance.ephemeral() as instance:
        ok, outcome = run_import_file(source, resources=_resources(env), instance=instance)
        assert ok and outcome["status"] == "committed", outcome["text"]
        [run] = outcome["rebuilt"]
        assert run["assets"] == ["marts/reorder_suggestions"] and run["success"]
        assert run["first"] == run["last"] == daily_partitions.get_last_partition_key()
        ok, outcome = run_import_file(customers, resources=_resources(env), instance=instance)
        assert ok and outcome["status"] == "committed" and outcome["rebuilt"] == []
    texts = [_text(m) for m in _outbox(env)]
    assert any("Reorder list" in t for t in texts)
    assert not any("rebuilt" in t.lower() for t in texts if "customers.csv" in t)


def test_a_rebuild_that_fails_is_named_and_the_import_stays_committed(env, tmp_path, monkeypatch):
    from salesflow import marts

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(marts, "build_daily", broken)
    source, _ = _history_file(env, tmp_path)
    with dg.DagsterInstance.ephemeral() as instance:
        ok, outcome = run_import_file(source, resources=_resources(env), instance=instance)
    assert ok and outcome["status"] == "committed"  # the rows are in; `salesflow import` exits 0
    [days] = [r for r in outcome["rebuilt"] if r["first"] is not None]
    assert not days["success"] and "disk full" in days["errors"][0]
    assert "NOT rebuilt for 2025-03-03..2025-03-05: " in outcome["text"]
    assert "`salesflow materialize` builds them again" in outcome["text"]


def test_a_sales_import_leaves_todays_figures_equal_to_the_core_when_the_command_returns(env, tmp_path):
    """Sales go to the core, which stamps them today: the command refreshes today's figures
    (what core_sales_sensor requests when it sees them) before it returns."""
    a, b = sorted(env.products().values(), key=lambda p: (-p["stockQuantity"], p["sku"]))[:2]
    source = tmp_path / "offline sales.csv"
    source.write_text(f"receipt,sku,qty\nR1,{a['sku']},1\nR1,{b['sku']},2\nR2,{a['sku']},1\n")
    with dg.DagsterInstance.ephemeral() as instance:
        ok, outcome = run_import_file(source, resources=_resources(env), instance=instance)
    assert ok and outcome["status"] == "committed", outcome["text"]
    assert "today" in outcome["text"]

    with env.client() as c:
        today = c.get_json("/sales/today")
        core_day = c.server_today()
    assert len(today) >= 2
    con = duckdb.connect(str(env.warehouse), read_only=True)
    try:
        row = con.execute("SELECT orders, units, revenue, provisional FROM marts.daily_sales "
                          "WHERE sale_date = ?", [core_day]).fetchone()
    finally:
        con.close()
    assert row == (len(today), sum(i["quantity"] for s in today for i in s["items"]),
                   sum(Decimal(str(s["totalAmount"])) for s in today), True)
    msg = _outbox(env)[-1]
    assert "being rebuilt: today's figures" in " ".join(_text(msg).lower().split())


def test_days_without_a_daily_partition_are_named_not_rebuilt():
    """A history file with a day before the first partition and one dated today: the days in
    between are rebuilt as one span, the two others are named as days without marts."""
    before = daily_partitions.start.date() - timedelta(days=1)
    today = date.fromisoformat(daily_partitions.get_last_partition_key()) + timedelta(days=1)
    plan = follow_up_plan("sales_history", [today, DAYS[1], before, DAYS[0]])
    assert plan.spans == [(DAYS[0], DAYS[1])] and plan.outside == [before, today]

    outcome = ImportOutcome("committed", "old till.csv")
    outcome.rebuilt_days, outcome.days_outside = plan.spans, plan.outside
    outcome.rebuilt_marts = list(plan.follow.labels)
    facts = dict(rebuilt_facts(outcome))
    assert facts["Days being rebuilt"] == "3 - 4 March 2025"
    assert facts["Also being rebuilt"].startswith("Monthly profit")
    assert facts["Days without marts"].startswith(
        f"{before.day} {before:%B %Y}, {today.day} {today:%B %Y} (outside")
    # nothing is said to be rebuilt for an import that did not commit
    outcome.status = "rejected"
    assert rebuilt_facts(outcome) == []
