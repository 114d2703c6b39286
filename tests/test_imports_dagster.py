"""The inbox sensor, the import job and `salesflow import`, in process."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg

from pipelines.imports_job import (
    IMPORT_OP, SHA_TAG, import_job, import_run_config, run_import_file,
)
from resources import WAREHOUSE_POOL, CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from salesflow.imports.reading import sha256_file
from salesflow.imports.scan import ScanSettings, scan_inbox
from sensors.inbox import build_inbox_sensor, inbox_sensor
from tests.imports.fixtures import ImportEnv, env  # noqa: F401
from tests.test_imports_hostile import HOSTILE

FAST = ScanSettings(min_age_s=0)


def resources_for(env: ImportEnv) -> dict:
    return {
        "core": CoreApiResource(base_url=env.emu.url, phone=env.emu.admin[0], password=env.emu.admin[1],
                                backoff_s=0.01, backoff_max_s=0.05, max_attempts=3),
        "warehouse": WarehouseResource(database=str(env.warehouse)),
        "folders": FoldersResource(home=str(env.home)),
        "mailer": MailerResource(),
    }


class Ticker:
    """Evaluates a sensor tick after tick, carrying the cursor like the daemon does."""

    def __init__(self, home: Path, sensor=None, instance=None):
        self.sensor = sensor or build_inbox_sensor(settings=FAST)
        self.home = home
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> list[dg.RunRequest]:
        ctx = dg.build_sensor_context(cursor=self.cursor, instance=self.instance,
                                      resources={"folders": FoldersResource(home=str(self.home))})
        data = self.sensor.evaluate_tick(ctx)
        self.cursor = data.cursor
        return list(data.run_requests or [])


def _drop(home: Path, name: str, data: bytes) -> Path:
    path = home / "inbox" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- the sensor ----------------------------------------------------------------------------
def test_a_file_is_requested_once_it_stops_changing(tmp_path):
    ticker = Ticker(tmp_path)
    assert ticker.tick() == []  # creates the folders and the templates
    assert (tmp_path / "templates" / "sales.xlsx").exists() and (tmp_path / "inbox" / "approved").is_dir()
    path = _drop(tmp_path, "expenses.csv", b"date,amount\r\n2025-06-01,3\r\n")
    assert ticker.tick() == []  # first sighting
    with open(path, "ab") as fh:  # still being written
        fh.write(b"2025-06-02,4\r\n")
    assert ticker.tick() == []
    [request] = ticker.tick()
    sha = sha256_file(path)
    assert request.run_key == f"import-{sha}"
    assert request.run_config == import_run_config("expenses.csv", mode="auto", sha256=sha)
    assert request.tags[SHA_TAG] == sha
    assert ticker.tick() == []  # in flight: not again, even after a restart with the stored cursor
    restarted = Ticker(tmp_path)
    restarted.cursor = ticker.cursor
    assert restarted.tick() == []
    path.unlink()  # the run moved it out
    ticker.tick()
    assert json.loads(ticker.cursor)["files"] == {}


def test_young_files_wait_for_the_minimum_age(tmp_path):
    ticker = Ticker(tmp_path, sensor=build_inbox_sensor(settings=ScanSettings(min_age_s=3600)))
    path = _drop(tmp_path, "expenses.csv", b"date,amount\r\n2025-06-01,3\r\n")
    assert ticker.tick() == [] and ticker.tick() == []
    old = time.time() - 7200
    os.utime(path, (old, old))
    assert ticker.tick() == []  # the new mtime is a change: seen once more
    assert len(ticker.tick()) == 1


def test_partial_and_lock_files_are_never_requested(tmp_path):
    ticker = Ticker(tmp_path)
    ticker.tick()
    for name in (".~lock.sales.xlsx#", "~$sales.xlsx", "sales.xlsx.part", "sales.csv.crdownload",
                 "sales.tmp", ".hidden.csv"):
        _drop(tmp_path, name, b"sku,qty\r\n")
    (tmp_path / "inbox" / "some folder").mkdir()
    assert ticker.tick() == [] and ticker.tick() == []


def test_approved_files_get_their_own_run_key_and_config(tmp_path):
    ticker = Ticker(tmp_path, sensor=build_inbox_sensor(settings=FAST, mode="review"))
    ticker.tick()
    path = _drop(tmp_path, "approved/expenses.csv", b"date,amount\r\n2025-06-01,3\r\n")
    ticker.tick()
    [request] = ticker.tick()
    assert request.run_key == f"approve-{sha256_file(path)}"
    config = request.run_config["ops"][IMPORT_OP]["config"]
    assert config["path"] == "approved/expenses.csv" and config["mode"] == "review"


def test_thousands_of_files_are_taken_over_bounded_ticks_each_exactly_once(tmp_path):
    settings = ScanSettings(min_age_s=0, max_requests=400, max_in_flight=600, max_tracked=1000)
    ticker = Ticker(tmp_path, sensor=build_inbox_sensor(settings=settings))
    ticker.tick()
    n = 3000
    for i in range(n):
        _drop(tmp_path, f"expenses_{i:05d}.csv", b"date,amount\r\n2025-06-01,%d\r\n" % (i + 1))
    requested: dict[str, str] = {}
    slowest = 0.0
    for _ in range(40):
        started = time.monotonic()
        requests = ticker.tick()
        slowest = max(slowest, time.monotonic() - started)
        in_flight = sum(1 for v in json.loads(ticker.cursor)["files"].values() if v[2])
        assert len(requests) <= 400 and in_flight <= 600
        assert len(ticker.cursor) < 150_000
        for r in requests:
            path = r.run_config["ops"][IMPORT_OP]["config"]["path"]
            assert path not in requested
            requested[path] = r.run_key
        for path in list(requested)[: len(requested) - 300]:  # runs finish and move files out
            (tmp_path / "inbox" / path).unlink(missing_ok=True)
        if len(requested) == n:
            break
    assert len(requested) == n and len(set(requested.values())) == n
    assert slowest < 10


def test_identical_files_are_requested_one_after_the_other(tmp_path):
    ticker = Ticker(tmp_path)
    ticker.tick()
    _drop(tmp_path, "expenses_a.csv", b"date,amount\r\n2025-06-01,3\r\n")
    _drop(tmp_path, "expenses_b.csv", b"date,amount\r\n2025-06-01,3\r\n")
    ticker.tick()
    first = ticker.tick()
    assert len(first) == 1
    assert ticker.tick() == []
    (tmp_path / "inbox" / first[0].run_config["ops"][IMPORT_OP]["config"]["path"]).unlink()
    [second] = ticker.tick()
    assert second.run_key == first[0].run_key  # without an instance nothing says it already ran


def test_the_sensor_never_opens_the_warehouse(tmp_path):
    ticker = Ticker(tmp_path)
    _drop(tmp_path, "expenses.csv", b"date,amount\r\n2025-06-01,3\r\n")
    ticker.tick()
    ticker.tick()
    assert not list(tmp_path.rglob("*.duckdb"))


def test_scan_cursor_garbage_is_reset_not_fatal(tmp_path):
    from salesflow.imports.pipeline import InboxLayout

    layout = InboxLayout(tmp_path)
    layout.ensure(templates=False)
    _drop(tmp_path, "expenses.csv", b"date,amount\r\n2025-06-01,3\r\n")
    for cursor in ("not json", json.dumps({"v": 99}), json.dumps({"v": 1, "files": []}), None):
        result = scan_inbox(layout, cursor, settings=FAST)
        assert result.requests == [] and json.loads(result.cursor)["files"]


# -- the job -------------------------------------------------------------------------------
def test_the_import_op_runs_in_the_warehouse_pool():
    [node] = import_job.graph.node_defs
    assert node.name == IMPORT_OP and node.pool == WAREHOUSE_POOL
    assert inbox_sensor.job_name == "import_job"


def test_sensor_and_job_end_to_end_with_duplicates(env):
    a = sorted(env.products().values(), key=lambda p: p["sku"])[0]
    with dg.DagsterInstance.ephemeral() as instance:
        ticker = Ticker(env.home, instance=instance)
        ticker.tick()
        text = f"sku,counted\r\n{a['sku']},{a['stockQuantity'] + 4}\r\n".encode()
        _drop(env.home, "stock_counts_june.csv", text)
        _drop(env.home, "stock_counts_bad.csv", b"sku,counted\r\nNOPE,1\r\n")
        ticker.tick()
        requests = ticker.tick()
        assert len(requests) == 2
        results = {}
        for request in requests:
            result = import_job.execute_in_process(
                run_config=request.run_config, tags=request.tags, instance=instance,
                resources=resources_for(env))
            assert result.success
            out = result.output_for_node(IMPORT_OP)
            results[out["file"]] = (out, result)
        good, good_run = results["stock_counts_june.csv"]
        assert good["status"] == "committed" and good["rows_valid"] == 1
        bad, bad_run = results["stock_counts_bad.csv"]
        assert bad["status"] == "rejected" and bad["first_errors"][0]["row"] == 2
        meta = _output_metadata(bad_run)
        assert meta["status"].value == "rejected" and meta["rows_rejected"].value == 1
        assert "unknown sku 'NOPE'" in meta["first_errors"].value
        assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"] + 4
        assert ticker.tick() == [] and env.inbox_files() == []

        _drop(env.home, "stock_counts_again.csv", text)  # the same content once more
        ticker.tick()
        [again] = ticker.tick()
        assert again.run_key == f"import-{good['sha256']}-2"
        result = import_job.execute_in_process(run_config=again.run_config, tags=again.tags,
                                               instance=instance, resources=resources_for(env))
        assert result.output_for_node(IMPORT_OP)["status"] == "duplicate"
        assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"] + 4


def _output_metadata(result) -> dict:
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT":
            return event.event_specific_data.metadata
    raise AssertionError("no output")


def test_a_refused_commit_fails_the_run_with_the_reason(env, monkeypatch):
    p = next(p for p in env.products().values() if p["stockQuantity"] >= 1)
    _drop(env.home, "sales.csv", f"sku,qty\r\n{p['sku']},{p['stockQuantity'] + 1}\r\n".encode())
    import salesflow.imports.pipeline as pipeline
    from salesflow.imports import commit as C

    monkeypatch.setattr(pipeline, "catalogue",
                        lambda c: {k: {**v, "stockQuantity": 10**6} for k, v in C.catalogue(c).items()})
    with dg.DagsterInstance.ephemeral() as instance:
        result = import_job.execute_in_process(
            run_config=import_run_config("sales.csv"), instance=instance,
            resources=resources_for(env), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "INSUFFICIENT_STOCK" in failure.event_specific_data.error.message


def test_hostile_corpus_through_the_sensor_and_the_job(env):
    cases = [h for h in HOSTILE if h.id not in ("path-escaping-the-inbox",) and not h.marks]
    env.layout.ensure()
    scratch = env.home.parent / "scratch"
    scratch.mkdir()
    for i, case in enumerate(cases):
        folder = scratch / str(i)
        folder.mkdir()
        case.make(folder, scratch)
        [made] = list(folder.iterdir())
        stem, dot, ext = made.name.rpartition(".")
        unique = f"{stem}_{i:02d}.{ext}" if dot else f"{made.name}_{i:02d}"
        target = env.layout.inbox / unique
        if made.is_symlink():
            os.symlink(os.readlink(made), target)
        else:
            made.rename(target)
    products_before = env.products()
    with dg.DagsterInstance.ephemeral() as instance:
        ticker = Ticker(env.home, instance=instance)
        ticker.tick()
        statuses, keys = [], set()
        for _ in range(10):  # files with the same content are requested one after the other
            requests = ticker.tick()
            for request in requests:
                assert request.run_key not in keys
                keys.add(request.run_key)
                result = import_job.execute_in_process(
                    run_config=request.run_config, tags=request.tags, instance=instance,
                    resources=resources_for(env))
                assert result.success
                statuses.append(result.output_for_node(IMPORT_OP)["status"])
            if not env.inbox_files():
                break
        assert statuses == ["rejected"] * len(cases)
        assert ticker.tick() == []  # healthy, nothing left
    assert env.inbox_files() == []
    assert env.products() == products_before
    assert env.query("SELECT count(*) FROM ops.import_batches") == [(0,)]


# -- the command line ----------------------------------------------------------------------
def _cli_env(monkeypatch, env: ImportEnv) -> None:
    monkeypatch.setenv("SALESFLOW_CORE_URL", env.emu.url)
    monkeypatch.setenv("SALESFLOW_CORE_PHONE", env.emu.admin[0])
    monkeypatch.setenv("SALESFLOW_CORE_PASSWORD", env.emu.admin[1])
    monkeypatch.setenv("SALESFLOW_WAREHOUSE", str(env.warehouse))
    monkeypatch.setenv("SALESFLOW_HOME", str(env.home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("SALESFLOW_IMPORT_MODE", raising=False)


def test_salesflow_import_runs_the_job_on_one_file(env, monkeypatch, tmp_path, capsys):
    from pipelines.cli import main

    _cli_env(monkeypatch, env)
    source = tmp_path / "my expenses.csv"
    source.write_text("date,amount,category\r\n2025-06-01,99.50,Rent\r\n")
    assert main(["import", str(source)]) == 0
    out = capsys.readouterr().out
    assert "my expenses.csv: committed (expenses)" in out and "processed" in out
    assert source.exists()  # the original stays where it was
    assert env.query("SELECT amount FROM raw.expenses") == [(Decimal("99.50"),)]
    assert main(["import", str(source)]) == 0
    assert "duplicate" in capsys.readouterr().out

    bad = tmp_path / "expenses_bad.csv"
    bad.write_text("date,amount\r\n2031-01-01,5\r\n")
    assert main(["import", str(bad)]) == 3
    out = capsys.readouterr().out
    assert "row 2 column A (date): 2031-01-01 is in the future" in out and "rejected" in out
    assert main(["import", str(tmp_path / "missing.csv")]) == 2


def test_run_import_file_reports_a_failed_run(env, monkeypatch, tmp_path):
    _cli_env(monkeypatch, env)
    p = next(p for p in env.products().values() if p["stockQuantity"] >= 1)
    source = tmp_path / "sales.csv"
    source.write_text(f"sku,qty\r\n{p['sku']},{p['stockQuantity'] + 1}\r\n")
    import salesflow.imports.pipeline as pipeline
    from salesflow.imports import commit as C

    monkeypatch.setattr(pipeline, "catalogue",
                        lambda c: {k: {**v, "stockQuantity": 10**6} for k, v in C.catalogue(c).items()})
    ok, outcome = run_import_file(source)
    assert not ok and outcome["status"] == "failed" and "INSUFFICIENT_STOCK" in outcome["text"]


def test_values_from_a_file_cannot_inject_markdown_into_run_metadata():
    from pipelines.imports_job import outcome_metadata
    from salesflow.imports.pipeline import ImportOutcome
    from salesflow.imports.validation import Issue

    outcome = ImportOutcome("rejected", "customers.csv", rows_total=1, rows_valid=0, rows_rejected=1,
                            issues=[Issue(2, "name", "bad | reason\nsecond line",
                                          "![t](http://evil.example/pixel.png)", 1)])
    table = outcome_metadata(outcome)["first_errors"].value
    row = table.splitlines()[2]
    assert "![t](" not in row and "\\!\\[t\\]\\(" in row
    assert row.count(" | ") == 2 and "second line" in row


def test_cli_import_notices_name_the_configured_unsubscribe_address(monkeypatch, tmp_path):
    """`salesflow import` builds its mailer from the environment like the code location does:
    its import notices ask to be unsubscribed at SALESFLOW_MAIL_UNSUBSCRIBE, not the sender."""
    from pipelines.imports_job import env_resources

    monkeypatch.setenv("SALESFLOW_SMTP_SENDER", "SalesFlow <reports@shop.example>")
    monkeypatch.setenv("SALESFLOW_MAIL_UNSUBSCRIBE", "lists@shop.example")
    monkeypatch.setenv("SALESFLOW_HOME", str(tmp_path))
    mailer = env_resources()["mailer"].mailer(tmp_path / "outbox")
    assert mailer.unsubscribe_address == "lists@shop.example"
    assert mailer.list_unsubscribe().startswith("<mailto:lists@shop.example?")
