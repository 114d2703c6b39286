"""The report e-mails as their readers get them: the key figures in the body equal to the
report's, why revenue moved, the trend chart inline, the top five products and stock lines, the
PDF and workbook attached, nothing remote, and a layout that reads at 375 and 1024 px."""

from __future__ import annotations

import dataclasses
import html as html_lib
import re

import pytest

from salesflow.reports import report_message, write_report
from salesflow.fmt import fmt_change, fmt_growth, fmt_value
from tests.browser import assert_reads_on_phone
from tests.test_reports import (AS_OF, NOW, SETTINGS, add_anomalies, add_forecast,  # noqa: F401
                                con, shop_template, warehouse)

SENDER = "SalesFlow <reports@shop.example>"
OWNER = "owner@shop.example"
CARD = re.compile(r'class="kpi-label"[^>]*>(.*?)</div>\s*<div class="kpi-value"[^>]*>(.*?)</div>'
                  r'(?:\s*<div class="kpi-change[^"]*"[^>]*>(.*?)</div>)?', re.S)


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content()


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _cards(html: str) -> dict[str, tuple[str, str]]:
    return {html_lib.unescape(label): (html_lib.unescape(value), html_lib.unescape(change or ""))
            for label, value, change in CARD.findall(html)}


def _visible(html: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _message(files):
    return report_message(files, sender=SENDER, recipients=[OWNER], unsubscribe="leave@shop.example")


def _expected_change(k) -> str:
    if k.kind == "pct":
        return fmt_change(k.change, "pct")
    return fmt_growth(k.growth_pct)


@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly"])
def test_the_key_figures_in_the_body_are_the_reports(con, tmp_path, kind):
    add_forecast(con)
    files = write_report(con, kind, AS_OF, tmp_path, SETTINGS, now=NOW)
    r = files.report
    msg = _message(files)
    html, text = _html(msg), _text(msg)
    cards = _cards(html)
    wanted = ["Revenue", "Orders", "Average order value", "Units sold", "Gross profit", "Gross margin"]
    assert list(cards)[:6] == wanted
    for label in wanted:
        k = next(k for k in r.kpis if k.label == label)
        value = fmt_value(k.current, k.kind, r.currency)
        assert cards[label] == (value, _expected_change(k)), label
        # the text alternative carries the same figures on the figure's line
        assert re.search(rf"^{re.escape(label)}:\s+{re.escape(value)}\s+{re.escape(_expected_change(k))}$",
                         text, re.M), label
    main = r.comparisons[0]
    assert f"compared with {main.label.lower()}, {main.span_label}" in _visible(html)
    assert f"compared with {main.label.lower()}, {main.span_label}" in text
    # the attachments stay, byte for byte
    assert {p.get_filename(): p.get_content() for p in msg.iter_attachments()} == {
        files.pdf.name: files.pdf.read_bytes(), files.xlsx.name: files.xlsx.read_bytes()}
    # the chart travels inside the message and the HTML refers to it by Content-ID
    [image] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    # nothing remote: no URL at all in either part
    assert not re.search(r"https?:|//[a-z0-9]", html + text, re.I)
    assert msg["Subject"] == f"{r.shop_name}: {kind} report {r.period.label}"


def test_why_it_moved_and_the_year_ago_comparison_are_in_the_body(con, tmp_path):
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    r = files.report
    assert r.explanation, "the weekly report explains its revenue change"
    msg = _message(files)
    html, text = _visible(_html(msg)), _text(msg)
    for sentence in r.explanation:
        assert sentence in html and sentence in text
    for comp in r.comparisons:
        assert f"{comp.label} ({comp.span_label})" in html
        assert f"{comp.label} ({comp.span_label})" in text


def test_the_body_lists_the_top_five_products_and_stock_lines_and_says_how_many_more(con, tmp_path):
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    r = files.report
    top, stock = r.top_products.records(), r.stock_alerts.records()
    assert len(top) > 5, "the fixture shop sells more than five products a week"
    html, text = _visible(_html(_message(files))), _text(_message(files))
    top_html = html[html.index("Top products"):html.index("Stock to act on")]
    top_text = text[text.index("Top products:"):text.index("Stock to act on:")]
    for rec in top[:5]:
        assert rec["product_name"] in html
        line = (f"{rec['product_name']} ({rec['sku']}): {fmt_value(rec['revenue'], 'money', 'EUR')}, "
                f"{fmt_value(rec['revenue_share'], 'pct')} of revenue")
        assert line in text
    for rec in top[5:]:
        assert rec["sku"] not in top_text and rec["sku"] not in top_html
    assert f"and {len(top) - 5} more in the attached report" in html
    assert stock, "the fixture shop has products to reorder"
    for rec in stock[:5]:
        assert rec["product_name"] in html and f"({rec['sku']})" in text
        if rec["reorder_qty"]:
            assert f"reorder {rec['reorder_qty']:,}" in text
    if len(stock) > 5:
        assert f"and {len(stock) - 5} more in the attached workbook" in html


def test_weekly_customers_are_in_the_body_or_one_line_says_why_not(con, tmp_path):
    files = write_report(con, "weekly", AS_OF, tmp_path, SETTINGS, now=NOW)
    c = files.report.customers
    assert c is not None
    cards = _cards(_html(_message(files)))
    assert cards["Customers"][0] == f"{c.customers:,}"
    assert cards["Repeat rate"][0] == fmt_value(c.repeat_rate_pct, "pct")
    assert cards["New"][0] == f"{c.new_customers:,}" and cards["Returning"][0] == f"{c.returning_customers:,}"
    con.execute("UPDATE raw.sales SET customer_id = NULL")
    anonymous = write_report(con, "weekly", AS_OF, tmp_path / "anon", SETTINGS, now=NOW)
    assert anonymous.report.customers is None and anonymous.report.customers_note
    msg = _message(anonymous)
    assert anonymous.report.customers_note in _visible(_html(msg))
    assert anonymous.report.customers_note in _text(msg)
    assert "Repeat rate" not in _cards(_html(msg))


def test_margin_cards_are_left_out_where_no_cost_is_known(con, tmp_path):
    files = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    unknown = [dataclasses.replace(k, current=None, change=None)
               if k.key in ("gross_margin_pct", "cost_coverage_pct") else k for k in files.report.kpis]
    blind = dataclasses.replace(files, report=dataclasses.replace(files.report, kpis=unknown))
    assert list(_cards(_html(_message(blind)))) == ["Revenue", "Orders", "Average order value", "Units sold"]


def test_the_message_is_built_from_the_written_report_alone(con, tmp_path):
    """Mailing reads no table: the e-mail holds the figures of the PDF and workbook it carries,
    even when the warehouse has moved on since they were written."""
    files = write_report(con, "daily", AS_OF, tmp_path, SETTINGS, now=NOW)
    before = _cards(_html(_message(files)))
    con.execute("DELETE FROM marts.daily_sales")
    con.close()
    assert _cards(_html(_message(files))) == before


@pytest.mark.parametrize("kind", ["daily", "weekly"])
def test_report_emails_read_on_a_phone_and_a_desktop(con, tmp_path, kind):
    add_forecast(con)
    add_anomalies(con)
    files = write_report(con, kind, AS_OF, tmp_path, SETTINGS, now=NOW)
    views = assert_reads_on_phone(_message(files), tmp_path, f"report-{kind}")
    assert [v.width for v in views] == [375, 1024]
    # tall enough to hold the cards, the chart and both lists, at each width
    assert all(v.png_path.stat().st_size > 20_000 for v in views)


@pytest.mark.parametrize("first", ["salesflow.email_render", "salesflow.notices", "salesflow.reports"])
def test_the_mail_modules_import_in_any_order(first):
    """The report e-mail renders through email_render, which reads salesflow.fmt: a
    fresh process that imports either side first must not stop on a circular import."""
    import subprocess
    import sys

    code = f"import {first}; from salesflow.reports import report_message; from salesflow.notices import notify_import"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
