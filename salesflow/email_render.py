"""E-mail bodies from Jinja2 templates: an HTML part with its CSS inlined, and a text part.

``render("digest", **context)`` renders ``templates/email/digest.html.j2`` (which extends
``base.html.j2``) and ``templates/email/digest.txt.j2``. Mail clients drop or rewrite
``<style>`` blocks, so css-inline copies every rule into ``style`` attributes; the block stays
in the head for the clients that honour media queries (the phone layout). HTML is
autoescaped: names from the shop's data are text, never markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import css_inline
import jinja2

from salesflow.fmt import NA, fmt_change, fmt_growth, fmt_value

TEMPLATES = ("salesflow", "templates/email")


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str


def money(value, currency: str = "") -> str:
    return fmt_value(value, "money", currency)


def signed_money(value, currency: str = "") -> str:
    """``+1,240.00 EUR`` / ``-180.00 EUR``; zero without a sign."""
    return fmt_change(value, "money", currency)


def num(value, places: int = 0) -> str:
    if value is None:
        return NA
    if places == 0:
        return f"{int(round(float(value))):,}"
    return fmt_value(value, {1: "dec1", 3: "dec3"}.get(places, "num"))


def pct(value) -> str:
    """A growth or share in percent, signed: ``+12.50 %``."""
    return fmt_growth(value)


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(*TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(money=money, signed_money=signed_money, num=num, pct=pct)
    return env


def environment(*, html: bool = True) -> jinja2.Environment:
    """The templates' environment (HTML autoescaped, or the text one), for templates built in
    code: ``environment().from_string('{% extends "base.html.j2" %}...')``."""
    return _environments()[0 if html else 1]


def inline_css(html: str) -> str:
    return _inliner().inline(html)


@lru_cache(maxsize=1)
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    return _environment(True), _environment(False)


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    # keep_style_tags: the media queries for narrow screens cannot be inlined
    return css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


def render_html(template: str, **context) -> str:
    return inline_css(environment().get_template(f"{template}.html.j2").render(**context))


def render_text(template: str, **context) -> str:
    text = environment(html=False).get_template(f"{template}.txt.j2").render(**context)
    # templates may leave runs of blank lines where optional sections were skipped
    lines, blank = [], 0
    for line in text.splitlines():
        blank = blank + 1 if not line.strip() else 0
        if blank <= 1:
            lines.append(line.rstrip())
    return "\n".join(lines).strip() + "\n"


def render(template: str, **context) -> Rendered:
    """The HTML and text parts of one message from the same context."""
    return Rendered(html=render_html(template, **context), text=render_text(template, **context))
