"""The e-mails' shared layout: templates, inlined CSS, escaping, the opt-out header, and the
browser check that every message test relies on."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from salesflow import email_render
from salesflow.mailer import Mailer, SmtpSettings, build_message
from tests.browser import assert_reads_on_phone, email_view, require_browser

PAGE = """{% extends "base.html.j2" %}{% import "macros.html.j2" as m %}
{% block content %}{{ m.kpi_cards(cards) }}<h2>Top products</h2>{{ m.table(columns, rows) }}
{% endblock %}"""


def _page(**over) -> str:
    context = dict(
        title="Daily report: Tuesday 2025-06-03", subtitle="Demo shop", shop_name="Demo shop",
        unsubscribe="owner@shop.example",
        cards=[{"label": "Revenue", "value": email_render.money(1234567.891, "EUR"),
                "change": "+12.00 % vs Tuesday 2025-05-27", "tone": "up"},
               {"label": "Orders", "value": email_render.num(1234)},
               {"label": "Average order", "value": email_render.money(1000.456, "EUR")}],
        columns=[{"label": "Product"}, {"label": "Units", "numeric": True},
                 {"label": "Revenue", "numeric": True}],
        rows=[["Ceramic " + "X" * 90 + " \u202etsil", "1,204", "98,765,432.10 EUR"],
              ["<script>alert(1)</script>", "3", "9.00 EUR"]],
    )
    context.update(over)
    return email_render.inline_css(email_render.environment().from_string(PAGE).render(**context))


def _message(html: str) -> EmailMessage:
    return build_message(sender="SalesFlow <reports@shop.example>", to=["owner@shop.example"],
                         subject="Daily report", text="see the HTML part", html=html)


def test_css_is_inlined_and_shop_data_is_escaped():
    html = _page()
    assert '<h1 style="' in html and "font-size: 20px" in html  # clients that drop <style>
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html


def test_money_filters_sign_and_group_as_the_reports_do():
    assert email_render.money(1234567.891, "EUR") == "1,234,567.89 EUR"
    assert email_render.signed_money(-5, "EUR") == "-5.00 EUR"
    assert email_render.signed_money(5, "EUR") == "+5.00 EUR"
    assert email_render.signed_money(0, "EUR") == "0.00 EUR"
    assert email_render.num(1234.4) == "1,234" and email_render.num(None) == "n/a"


def test_the_layout_reads_at_375_and_1024_px_with_long_names_and_big_figures(tmp_path):
    views = assert_reads_on_phone(_message(_page()), tmp_path, "layout")
    assert [v.width for v in views] == [375, 1024]
    assert all(v.png_path.stat().st_size > 5_000 for v in views)


def test_the_check_sees_a_page_wider_than_the_phone(tmp_path):
    """The check itself can fail: a fixed 700 px block overflows a 375 px screen."""
    require_browser()
    wide = _page().replace("</h1>", '</h1><div style="width: 700px">wide</div>')
    views, problems = email_view.check_message(_message(wide), tmp_path, "wide")
    assert views[0].scroll_width >= 700 and not views[0].fits
    assert problems == [f"{views[0].scroll_width} px wide on a 375 px screen"]


def test_the_check_refuses_remote_content(tmp_path):
    require_browser()
    tracked = _page().replace("</h1>", '</h1><img src="https://tracker.example/p.gif" alt="">')
    _, problems = email_view.check_message(_message(tracked), tmp_path, "remote")
    assert problems == ['remote content: src="https://']
    # a link the reader may follow loads nothing by itself
    linked = _page().replace("</h1>", '</h1><a href="http://127.0.0.1:3000/runs/1">the run</a>')
    assert email_view.check_message(_message(linked), tmp_path, "link")[1] == []


def test_a_blank_page_is_reported(tmp_path):
    require_browser()
    msg = _message("<html><body></body></html>")
    _, problems = email_view.check_message(msg, tmp_path, "blank")
    assert "blank at 375 px" in problems


@pytest.mark.parametrize("configured, want", [
    ("", "reports@shop.example"), ("leave@shop.example", "leave@shop.example")])
def test_every_delivered_message_says_how_to_leave_its_list(tmp_path, configured, want):
    mailer = Mailer(SmtpSettings(sender="SalesFlow <reports@shop.example>", unsubscribe=configured),
                    outbox_dir=tmp_path)
    delivery = mailer.deliver(_message("<p>hi</p>"))
    sent = email_view.read_message(delivery.path)
    assert sent["List-Unsubscribe"].strip() == f"<mailto:{want}?subject=unsubscribe%3A%20Daily%20report>"


def test_an_unsubscribe_setting_that_is_no_address_is_refused():
    from salesflow.errors import MailConfigError

    with pytest.raises(MailConfigError, match="unsubscribe address 'nobody'"):
        SmtpSettings.from_env({"SALESFLOW_MAIL_UNSUBSCRIBE": "nobody"})
