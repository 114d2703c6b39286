"""The code location loads, names the contract's tables, and schedules yesterday's partition."""

from datetime import datetime, timezone

import dagster as dg

from pipelines.definitions import defs
from salesflow.warehouse import RAW_DDL


def test_every_raw_contract_table_has_its_asset():
    keys = {k.to_user_string().replace("/", ".") for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(RAW_DDL) <= keys


def test_resources_come_from_the_environment_not_code():
    core = defs.resources["core"]
    for field in ("base_url", "phone", "password"):
        assert isinstance(getattr(core, field), dg.EnvVar), field


def test_daily_schedule_runs_yesterdays_partition_at_six():
    schedule = defs.resolve_schedule_def("daily_job_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 7, 1, 6, 0, tzinfo=timezone.utc))
    requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2025-06-30"]
