"""The lead_times import kind: a good file sets each product's lead time in raw.lead_times (a
later file replaces a sku's figure), a bad one is rejected naming its rows and writes nothing."""

from __future__ import annotations

from openpyxl import load_workbook

from salesflow.imports.kinds import KINDS
from salesflow.imports.reading import read_file
from salesflow.imports.validation import detect_kind
from tests.imports.builders import write_xlsx
from tests.imports.fixtures import env  # noqa: F401


def _skus(env, n):
    return sorted(env.products())[:n]


def test_a_lead_times_file_is_recognised_by_its_header_alone(tmp_path):
    path = write_xlsx(tmp_path / "supplier sheet.xlsx", [["Product code", "Lead time (days)"],
                                                         ["SKU-0001", 14]])
    assert detect_kind(read_file(path), "supplier sheet.xlsx") is KINDS["lead_times"]


def test_a_good_file_is_committed_and_a_later_one_replaces_a_skus_lead_time(env):
    a, b, c = _skus(env, 3)
    env.drop("lead_times.csv", f"sku,lead_time_days\r\n{a},14\r\n{b},3\r\n")
    outcome = env.run("lead_times.csv")
    assert outcome.status == "committed", outcome.summary()
    assert env.query("SELECT sku, lead_time_days, source_file FROM raw.lead_times ORDER BY 1") == [
        (a, 14, "lead_times.csv"), (b, 3, "lead_times.csv")]
    assert env.query("SELECT kind, status, rows_total, rows_valid FROM ops.imports") == [
        ("lead_times", "committed", 2, 2)]

    env.drop("lead_times_update.csv", f"SKU,Lead time\r\n{b},21\r\n{c},0\r\n")
    again = env.run("lead_times_update.csv")
    assert again.status == "committed", again.summary()
    assert dict(again.commit.actions) == {"new": 1, "replaced": 1}
    assert env.query("SELECT sku, lead_time_days, source_file FROM raw.lead_times ORDER BY 1") == [
        (a, 14, "lead_times.csv"), (b, 21, "lead_times_update.csv"), (c, 0, "lead_times_update.csv")]


def test_a_bad_file_is_rejected_naming_each_bad_row_and_writes_nothing(env):
    a, b, c = _skus(env, 3)
    env.drop("lead_times.csv",
             f"sku,lead_time_days\r\n{a},7\r\nNO-SUCH-SKU,5\r\n{b},-2\r\n{a},9\r\n{c},400\r\n")
    outcome = env.run("lead_times.csv")
    assert outcome.status == "rejected"
    found = {(i.row, i.column): i.reason for i in outcome.issues}
    assert "unknown sku 'NO-SUCH-SKU'" in found[(3, "sku")]
    assert "at least 0" in found[(4, "lead_time_days")]
    assert "duplicate sku" in found[(5, "sku")] and "row 2" in found[(5, "sku")]
    assert "at most 365" in found[(6, "lead_time_days")]
    assert set(found) == {(3, "sku"), (4, "lead_time_days"), (5, "sku"), (6, "lead_time_days")}
    assert env.query("SELECT count(*) FROM raw.lead_times") == [(0,)]
    assert env.query("SELECT kind, status, rows_rejected FROM ops.imports") == [("lead_times", "rejected", 4)]
    assert outcome.report is not None and outcome.report.exists()  # the per-row error report


def test_the_template_documents_the_columns_and_is_accepted_once_filled_in(tmp_path, env):
    from salesflow.imports.templates import ensure_templates

    folder = tmp_path / "templates"
    ensure_templates(folder)
    wb = load_workbook(folder / "lead_times.xlsx")
    ws = wb["lead_times"]
    assert [c.value for c in ws[1]] == ["sku", "lead_time_days"]
    assert "Days from order to delivery" in ws["B1"].comment.text
    sku = _skus(env, 1)[0]
    ws.append([sku, 10])
    filled = env.layout.inbox / "from the supplier.xlsx"
    env.layout.ensure()
    wb.save(filled)
    outcome = env.run("from the supplier.xlsx")
    assert outcome.status == "committed", outcome.summary()
    assert env.query("SELECT sku, lead_time_days FROM raw.lead_times") == [(sku, 10)]
