"""Exactly-once writes to the core: a batch whose answer was lost (a timeout, a kill at any
point of the batch) is never applied twice, and a commit the core stops half-way leaves an
exact account per row and resumes from the row that failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from resources import CoreApiResource, FoldersResource, MailerResource, WarehouseResource
from salesflow.core_client import CoreClient
from salesflow.imports import journal as J
from salesflow.imports.pipeline import ImportSettings, process_file
from tests.imports.fixtures import ImportEnv, env  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
WRITE_TIMEOUT_S = 1.0  # the client gives up on a write after this
SETTLE_S = 4.0  # how long after sending a write its effect is awaited before a resend
HOLD_S = 2.5  # the core applies the held write this long after it arrived


class Killed(BaseException):
    """The importing process dies here (nothing in the import catches a BaseException)."""


# -- helpers -----------------------------------------------------------------------------
def _client(env: ImportEnv, **kw):
    options = dict(backoff_s=0.01, backoff_max_s=0.05, max_attempts=3,
                   write_timeout_s=WRITE_TIMEOUT_S, write_settle_s=SETTLE_S)
    options.update(kw)
    return lambda: CoreClient(env.emu.url, *env.emu.admin, **options)


def _run(env: ImportEnv, relpath: str, **settings):
    return process_file(relpath, layout=env.layout, connect=env.connect,
                        client_factory=_client(env), settings=ImportSettings(**settings))


def _faults(env: ImportEnv):
    return env.emu.app.state.faults


def _stocked(env: ImportEnv, n: int, at_least: int = 20) -> list[dict]:
    products = sorted(env.products().values(), key=lambda p: p["sku"])
    return [p for p in products if p["stockQuantity"] >= at_least][:n]


def _max_sale_id(env: ImportEnv) -> int:
    return max(s["id"] for s in env.sales())


def _sell(env: ImportEnv, sku: str) -> None:
    with env.client() as client:  # a till sale
        client.post_json("/sales", {"items": [{"sku": sku, "quantity": 1}]})


def _sales_csv(products: list[dict], n_sales: int) -> tuple[str, dict[str, int]]:
    lines, sold = [], {p["sku"]: 0 for p in products}
    for i in range(n_sales):
        p = products[i % len(products)]
        lines.append(f"R{i},{p['sku']},1,C{i % 3}\r\n")
        sold[p["sku"]] += 1
    return "Receipt,SKU,Qty,Customer\r\n" + "".join(lines), sold


def _assert_sold_once(env: ImportEnv, products: list[dict], before_id: int, n_sales: int,
                      sold: dict[str, int]) -> None:
    new = [s for s in env.sales() if s["id"] > before_id]
    assert len(new) == n_sales, f"the core holds {len(new)} new sales, the file has {n_sales}"
    after = env.products()
    for p in products:
        assert after[p["sku"]]["stockQuantity"] == p["stockQuantity"] - sold[p["sku"]], p["sku"]


def _status(env: ImportEnv) -> tuple[str, str]:
    return env.query("SELECT status, message FROM ops.imports WHERE status <> 'duplicate'")[0]


def _batch_details(env: ImportEnv) -> dict[int, dict]:
    sha = env.query("SELECT file_sha256 FROM ops.imports")[0][0]
    with env.connect() as con:
        return {no: b.detail for no, b in J.batches(con, sha).items()}


def _crash_on(monkeypatch, name: str, when) -> dict:
    """``journal.<name>`` kills the import on the first call for which ``when(batch_no)`` holds."""
    real = getattr(J, name)
    state = {"hit": False}

    def wrapper(con, sha, batch_no, *args, **kwargs):
        if when(batch_no) and not state["hit"]:
            state["hit"] = True
            raise Killed(f"killed at {name} of batch {batch_no}")
        return real(con, sha, batch_no, *args, **kwargs)

    monkeypatch.setattr(J, name, wrapper)
    return state


# -- a slow core: a write applied after the client's timeout -------------------------
def test_a_bulk_sale_applied_after_the_client_gave_up_is_found_not_sent_again(env):
    products = _stocked(env, 3)
    before_id = _max_sale_id(env)
    text, sold = _sales_csv(products, 12)
    env.drop("sales.csv", text)
    held = _faults(env).plan("hang", method="POST", path="/sales/bulk", hold_s=HOLD_S)
    started = time.monotonic()
    outcome = _run(env, "sales.csv", batch_sales=5)
    assert held.done.wait(10)
    assert outcome.status == "committed", outcome.summary()
    c = outcome.commit
    assert (c.batches_total, c.batches_recovered, c.batches_committed) == (3, 1, 2)
    _assert_sold_once(env, products, before_id, 12, sold)
    assert "sales: 12" in outcome.message and _status(env)[0] == "committed"
    assert time.monotonic() - started < SETTLE_S + 5  # the wait is bounded


def _fast_retry_import_job():
    """The real import op with its retry policy, retried after 0.2 s instead of 10 s."""
    from pipelines.imports_job import IMPORT_RETRY, import_file

    policy = dg.RetryPolicy(max_retries=IMPORT_RETRY.max_retries, delay=0.2)

    @dg.job(name="import_job_fast_retry")
    def job():
        import_file.with_retry_policy(policy)()

    return job


def test_the_step_retry_never_resends_a_bulk_sale_still_held_by_the_core(env):
    from pipelines.imports_job import import_run_config

    products = _stocked(env, 3)
    before_id = _max_sale_id(env)
    text, sold = _sales_csv(products, 8)
    env.drop("sales.csv", text)
    # held longer than the first attempt and two quick retries take
    held = _faults(env).plan("hang", method="POST", path="/sales/bulk", hold_s=5.0)
    # the first attempt cannot look for the batch either: the core is overloaded
    _faults(env).plan("http_503", method="GET", path="/sales/history")
    resources = {
        "core": CoreApiResource(base_url=env.emu.url, phone=env.emu.admin[0],
                                password=env.emu.admin[1], max_attempts=1, backoff_s=0.01,
                                write_timeout_s=WRITE_TIMEOUT_S, write_settle_s=7.0),
        "warehouse": WarehouseResource(database=str(env.warehouse)),
        "folders": FoldersResource(home=str(env.home)),
        "mailer": MailerResource(),
    }
    result = _fast_retry_import_job().execute_in_process(
        run_config=import_run_config("sales.csv"), resources=resources, raise_on_error=False)
    assert held.done.wait(10)
    assert result.success
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert restarts, "the first attempt was expected to fail and be retried"
    _assert_sold_once(env, products, before_id, 8, sold)
    outcome = result.output_for_node("import_file")
    assert outcome["status"] == "committed" and outcome["commit"]["batches_recovered"] == 1
    assert _status(env)[0] == "committed"


def test_a_product_update_landing_late_is_awaited_and_never_clobbers_a_later_sale(env):
    a = _stocked(env, 1)[0]
    env.drop("products.csv", f"sku,name,price\r\n{a['sku']},{a['name']} v2,{a['price'] + 1:.2f}\r\n")
    held = _faults(env).plan("hang", method="PUT", path="/products/by-sku/", hold_s=HOLD_S)
    resent = _faults(env).plan(None, method="PUT", path="/products/by-sku/", times=100)
    outcome = _run(env, "products.csv")
    assert outcome.status == "committed", outcome.summary()
    _sell(env, a["sku"])
    assert held.done.wait(10)
    after = env.products()[a["sku"]]
    assert after["name"] == f"{a['name']} v2" and after["price"] == pytest.approx(a["price"] + 1)
    assert after["stockQuantity"] == a["stockQuantity"] - 1  # the sale after the import stands
    assert resent.seen == 0


def test_a_stock_count_landing_late_is_awaited_and_never_clobbers_a_later_sale(env):
    a, b = _stocked(env, 2)
    counted = {a["sku"]: a["stockQuantity"] + 7, b["sku"]: b["stockQuantity"] + 3}
    env.drop("stock_counts.csv", "sku,counted\r\n" + "".join(f"{s},{q}\r\n" for s, q in counted.items()))
    held = _faults(env).plan("hang", method="PUT", path=f"/products/by-sku/{a['sku']}", hold_s=HOLD_S)
    resent = _faults(env).plan(None, method="PUT", path=f"/products/by-sku/{a['sku']}", times=100)
    outcome = _run(env, "stock_counts.csv")
    assert outcome.status == "committed", outcome.summary()
    _sell(env, a["sku"])
    assert held.done.wait(10)
    after = env.products()
    assert after[a["sku"]]["stockQuantity"] == counted[a["sku"]] - 1
    assert after[b["sku"]]["stockQuantity"] == counted[b["sku"]]
    assert resent.seen == 0 and outcome.commit.actions["set"] == 2


# -- kills at each point of a batch ----------------------------------------------------------
class Case:
    """A file of one kind whose batch ``batch`` is interrupted, and how to check the result.
    Batch 2 with small batches; batch 1 (the only one) with the default sizes of the CLI."""

    def __init__(self, env: ImportEnv, kind: str, batch: int = 2):
        self.env, self.kind, self.batch = env, kind, batch
        products = _stocked(env, 4)
        self.products = products
        self.before_id = _max_sale_id(env)
        if kind == "sales":
            text, self.sold = _sales_csv(products, 9)
            self.settings, self.write = {"batch_sales": 4}, ("POST", "/sales/bulk")
            self.sku_written = products[0]["sku"]  # every batch sells it
        elif kind == "products":
            a, b = products[:2]
            text = ("sku,name,price,initial_stock\r\nNEW-1,New one,1.50,5\r\nNEW-2,New two,2.50,6\r\n"
                    f"{a['sku']},{a['name']} v2,{a['price']:.2f},\r\nNEW-3,New three,3.50,7\r\n"
                    f"{b['sku']},{b['name']} v2,{b['price']:.2f},\r\n")
            self.settings, self.write = {"batch_rows": 2}, ("PUT", f"/products/by-sku/{a['sku']}")
            self.sku_written = a["sku"]
        else:
            self.counted = {p["sku"]: p["stockQuantity"] + 5 + i for i, p in enumerate(products)}
            text = "sku,counted\r\n" + "".join(f"{s},{q}\r\n" for s, q in self.counted.items())
            self.settings = {"batch_rows": 2}
            self.write = ("PUT", f"/products/by-sku/{products[2]['sku']}")
            self.sku_written = products[2]["sku"]
        if batch == 1:
            self.settings = {}
        self.name = f"{kind}.csv"
        env.drop(self.name, text)

    def plan(self, **kw):
        """Script the first write of the batch (a bulk POST, a product's PUT)."""
        method, path = self.write
        after = 1 if self.kind == "sales" and self.batch == 2 else 0
        return _faults(self.env).plan(kw.pop("kind", None), method=method, path=path,
                                      after=after, **kw)

    def check(self, sold_after: int = 0) -> None:
        """Exactly once in the core (``sold_after`` till sales of ``sku_written`` since)."""
        env, products = self.env, self.products
        assert _status(env)[0] == "committed", _status(env)
        assert all(d["state"] == "committed" for d in _batch_details(env).values())
        after = env.products()
        if self.kind == "sales":
            sold = dict(self.sold)
            sold[self.sku_written] += sold_after
            _assert_sold_once(env, products, self.before_id, 9 + sold_after, sold)
            return
        if self.kind == "products":
            assert [(after[s]["name"], after[s]["stockQuantity"]) for s in ("NEW-1", "NEW-2", "NEW-3")] \
                == [("New one", 5), ("New two", 6), ("New three", 7)]
            for p in products[:2]:
                assert after[p["sku"]]["name"] == f"{p['name']} v2"
                assert after[p["sku"]]["stockQuantity"] == p["stockQuantity"] - (
                    sold_after if p["sku"] == self.sku_written else 0)
            return
        for sku, q in self.counted.items():
            assert after[sku]["stockQuantity"] == q - (sold_after if sku == self.sku_written else 0)


KINDS = ["sales", "products", "stock_counts"]


@pytest.mark.parametrize("kind", KINDS)
def test_killed_before_the_batch_is_journaled_the_rerun_commits_once(env, monkeypatch, kind):
    case = Case(env, kind)
    crash = _crash_on(monkeypatch, "begin_batch", lambda no: no == 2)
    with pytest.raises(Killed):
        _run(env, case.name, **case.settings)
    assert crash["hit"]
    monkeypatch.undo()
    outcome = _run(env, case.name, **case.settings)
    assert outcome.status == "committed", outcome.summary()
    assert outcome.commit.batches_skipped == 1
    case.check()


@pytest.mark.parametrize("kind", KINDS)
def test_killed_after_begun_before_sending_the_rerun_sends_at_once(env, monkeypatch, kind):
    case = Case(env, kind)
    crash = _crash_on(monkeypatch, "mark_sent", lambda no: no == 2)
    writes = case.plan(times=100)
    with pytest.raises(Killed):
        _run(env, case.name, **case.settings)
    assert crash["hit"] and writes.seen == 0  # the write never left
    assert _batch_details(env)[2]["state"] == "begun"
    monkeypatch.undo()
    started = time.monotonic()
    outcome = _run(env, case.name, **case.settings)
    assert outcome.status == "committed", outcome.summary()
    assert time.monotonic() - started < SETTLE_S  # nothing was in flight: no wait
    assert writes.seen == (2 if kind == "sales" else 1)  # sales: batches 2 and 3
    case.check()


def _cli_import(env: ImportEnv, name: str, tmp_path: Path) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SALESFLOW_"))}
    environ.update(
        PYTHONPATH=str(ROOT), SALESFLOW_CORE_URL=env.emu.url, SALESFLOW_CORE_PHONE=env.emu.admin[0],
        SALESFLOW_CORE_PASSWORD=env.emu.admin[1], SALESFLOW_WAREHOUSE=str(env.warehouse),
        SALESFLOW_HOME=str(env.home), SALESFLOW_TIMEZONE="UTC",
        SALESFLOW_PARTITIONS_START=os.environ.get("SALESFLOW_PARTITIONS_START", "2025-01-01"))
    source = tmp_path / name
    source.write_bytes((env.layout.inbox / name).read_bytes())
    (env.layout.inbox / name).unlink()
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "import", str(source)],
                            cwd=tmp_path, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@pytest.mark.parametrize("kind", KINDS)
def test_killed_after_the_core_applied_before_the_journal_says_so_the_rerun_finds_it(
        env, monkeypatch, kind):
    case = Case(env, kind)
    # the answer came back; the process dies before recording it
    name = "finish_batch" if kind == "sales" else "mark_answered"
    writes = case.plan(times=100)

    def answered(no):
        return no == 2 and writes.seen > 0

    crash = _crash_on(monkeypatch, name, answered)
    with pytest.raises(Killed):
        _run(env, case.name, **case.settings)
    assert crash["hit"] and writes.seen == 1
    assert _batch_details(env)[2]["state"] == "sent"
    status, message = _status(env)
    assert status == "failed" and "sent without an answer" in message, message
    monkeypatch.undo()
    outcome = _run(env, case.name, **case.settings)
    assert outcome.status == "committed", outcome.summary()
    assert writes.seen == (2 if kind == "sales" else 1)  # batch 2's write is not sent again
    case.check()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_real_kill_while_the_core_holds_the_write_never_applies_it_twice(env, tmp_path, kind):
    """``kill -9`` of ``salesflow import`` once the core has the write; the core applies it
    2 s after the kill. The immediate rerun waits for its effect instead of sending it again,
    so a till sale after the rerun is not undone by the late write either."""
    case = Case(env, kind, batch=1)
    proc_box: dict = {}

    def kill():
        proc = proc_box["proc"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    held = case.plan(on_received=kill, hold_s=2.0)
    proc = proc_box["proc"] = _cli_import(env, case.name, tmp_path)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, out.decode(errors="replace")[-2000:]
    detail = _batch_details(env)[1]
    assert detail["state"] == "sent" and detail["sent_at"]
    outcome = _run(env, ".cli/" + case.name, **case.settings)
    assert outcome.status == "committed", outcome.summary()
    _sell(env, case.sku_written)  # a till sale once the import is done
    assert held.done.wait(10)
    case.check(sold_after=1)


# -- a commit the core stops half-way: an exact account, resumed from the failed row --------
def test_a_product_the_core_refuses_mid_commit_leaves_an_exact_account_and_resumes(env, monkeypatch):
    import salesflow.imports.pipeline as pipeline
    from salesflow.imports import commit as C

    env.drop("products.csv", "sku,name,price,initial_stock\r\nIMP-1,Imp one,1.00,1\r\n"
             "IMP-2,Imp two,2.00,2\r\nIMP-3,Imp three,3.00,3\r\nIMP-4,Imp four,4.00,4\r\n")
    with env.client() as client:  # another till creates the name after validation read it
        client.post_json("/products", {"name": "Imp three", "sku": "OTHER-3", "price": 1.0,
                                       "stockQuantity": 0, "lowStockThreshold": 1})
    hidden = lambda client: {k: v for k, v in C.catalogue(client).items() if k != "OTHER-3"}  # noqa: E731
    monkeypatch.setattr(pipeline, "catalogue", hidden)
    outcome = _run(env, "products.csv")
    assert outcome.status == "failed"
    status, message = _status(env)
    assert status == "failed" and message == outcome.message
    assert "rows 2-3 (IMP-1, IMP-2) are committed" in message, message
    assert "row 4 (sku 'IMP-3')" in message and "Imp three" in message  # the failed row and why
    assert "rows 4-5 (IMP-3, IMP-4) are not" in message, message
    assert outcome.account == {"committed": [2, 3], "failed": [4], "not_committed": [4, 5]}
    monkeypatch.undo()

    with env.client() as client:  # the cause is fixed: the other product is renamed
        other = client.get_json("/products/by-sku/OTHER-3")
        client.put_json("/products/by-sku/OTHER-3", {**other, "name": "Other three"})
    writes = _faults(env).plan(None, path="/products", times=1000)
    env.drop("products.csv", outcome.moved_to.read_bytes())
    again = _run(env, "products.csv")
    assert again.status == "committed", again.summary()
    by_sku = {path.rsplit("/", 1)[-1] for _, path in writes.requests if "/by-sku/" in path}
    assert not by_sku & {"IMP-1", "IMP-2"}  # committed rows are neither read nor written again
    assert [m for m, _ in writes.requests if m != "GET"] == ["POST", "POST"]  # IMP-3, IMP-4
    assert dict(again.commit.actions) == {"created": 2, "committed_earlier": 2}
    after = env.products()
    assert [after[f"IMP-{i}"]["stockQuantity"] for i in range(1, 5)] == [1, 2, 3, 4]
    assert "2 row(s) committed by an earlier attempt" in _status(env)[1]


# -- the client: writes wait longer than reads, and say when their outcome is unknown ------
def test_writes_have_their_own_longer_timeout_and_a_lost_answer_is_told_apart(env):
    from salesflow.core_client import WriteOutcomeUnknown
    from salesflow.errors import CoreApiError

    sku = _stocked(env, 1)[0]["sku"]
    client = CoreClient(env.emu.url, *env.emu.admin, timeout_s=0.4, write_timeout_s=1.5,
                        max_attempts=1)
    with client:
        client.get_json("/auth/me")
        _faults(env).plan("hang", method="POST", path="/sales", hold_s=0.8)
        client.post_json("/sales", {"items": [{"sku": sku, "quantity": 1}]})  # slower than a read
        _faults(env).plan("hang", method="GET", path="/products", hold_s=0.8)
        with pytest.raises(CoreApiError) as read:
            client.get_json("/products")
        assert not isinstance(read.value, WriteOutcomeUnknown)
        _faults(env).plan("hang", method="POST", path="/sales", hold_s=2.0)
        with pytest.raises(WriteOutcomeUnknown):
            client.post_json("/sales", {"items": [{"sku": sku, "quantity": 1}]})
        _faults(env).plan("http_503", method="POST", path="/sales")
        with pytest.raises(WriteOutcomeUnknown):
            client.post_json("/sales", {"items": [{"sku": sku, "quantity": 1}]})
    closed = CoreClient("http://127.0.0.1:9", *env.emu.admin, max_attempts=1)
    closed._token = "x"  # the write itself cannot connect: it never left
    with closed, pytest.raises(CoreApiError) as never:
        closed.post_json("/sales", {"items": [{"sku": sku, "quantity": 1}]})
    assert not isinstance(never.value, WriteOutcomeUnknown)
    defaults = CoreApiResource(base_url=env.emu.url, phone="p", password="x").get_client()
    assert (defaults.write_timeout.read, defaults.write_settle_s) == (120.0, 180.0)
    with pytest.raises(ValueError):
        CoreClient(env.emu.url, "p", "x", write_timeout_s=10, write_settle_s=5)
