"""E-mails as their readers see them: an HTML message rendered in headless Chromium.

    .venv/bin/python scripts/email_view.py exports/outbox/*.eml [--width 375 --width 1024] [--out DIR]

For each message: its HTML part with the inline images (cid:) resolved, rendered at each
width through Playwright (driving the system's Chromium, no browser download); prints the page's scroll width (wider than the screen means the reader scrolls
sideways) and writes a PNG screenshot per width. Exits 1 when a message overflows, has no
HTML part, refers to remote content, or renders blank. The browser is the first of chromium,
chromium-browser, google-chrome on PATH, or $SALESFLOW_CHROMIUM (scripts/system-deps.sh
installs chromium).
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import os
import re
import shutil
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTHS = (375, 1024)
MAX_SHOT_PX = 16_000
# content a mail client would fetch: images, backgrounds, stylesheets, fonts (a link the
# reader may click is not fetched and is fine)
REMOTE = re.compile(r"""(?:\bsrc|\bbackground|\bposter)\s*=\s*["']?\s*(?:https?:)?//"""
                    r"""|<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//"""
                    r"""|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?(?:https?:)?//""", re.I)


class ViewError(Exception):
    pass


@dataclass(frozen=True)
class View:
    width: int
    scroll_width: int
    png_path: Path
    blank: bool
    height: int = 0  # the whole message's height in px at this width

    @property
    def fits(self) -> bool:
        return self.scroll_width <= self.width


def find_browser() -> str | None:
    override = os.environ.get("SALESFLOW_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).exists() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def read_message(path: str | Path) -> EmailMessage:
    with open(path, "rb") as fh:
        return email.message_from_binary_file(fh, policy=email.policy.default)


def html_of(msg: EmailMessage) -> str:
    """The message's HTML with each cid: image inlined as a data: URI (as a mail client shows it)."""
    part = msg.get_body(preferencelist=("html",))
    if part is None:
        raise ViewError(f"{msg['Subject']!r} has no HTML part")
    html = part.get_content()
    for sub in msg.walk():
        cid = sub.get("Content-ID")
        if cid and sub.get_content_maintype() == "image":
            data = base64.b64encode(sub.get_payload(decode=True)).decode("ascii")
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{sub.get_content_type()};base64,{data}")
    return html


def remote_references(html: str) -> list[str]:
    return [m.group(0) for m in REMOTE.finditer(html)]


def _is_blank(png: Path) -> bool:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # our own screenshot: a very long message is a finding, not an attack
    with Image.open(png) as img:
        gray = img.convert("L")
        hist = gray.histogram()
    total = sum(hist)
    background = max(hist)
    # a page with text and figures has a few percent of its pixels off the background shade
    return total == 0 or (total - background) / total < 0.005


def view_html(html: str, width: int, png_path: str | Path, *, height: int = 800,
              browser: str | None = None, timeout: float = 60.0) -> View:
    """``html`` laid out on a screen ``width`` px wide (as a phone at device scale 1), with
    every network request refused; a full-page screenshot goes to ``png_path``."""
    return view_many(html, (width,), Path(png_path).parent, Path(png_path).stem,
                     height=height, browser=browser, timeout=timeout, exact_path=Path(png_path))[0]


def view_many(html: str, widths: tuple[int, ...], out_dir: str | Path, stem: str, *,
              height: int = 800, browser: str | None = None, timeout: float = 60.0,
              exact_path: Path | None = None) -> list[View]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    browser = browser or find_browser()
    if browser is None:
        raise ViewError("chromium is not installed: run scripts/system-deps.sh")
    views = []
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=browser, args=["--no-sandbox"],
                                          timeout=timeout * 1000)
            try:
                for width in widths:
                    png = exact_path or Path(out_dir) / f"{stem}-{width}.png"
                    page = chromium.new_page(viewport={"width": width, "height": height})
                    page.route("**/*", lambda route: route.abort()
                               if route.request.url.startswith(("http:", "https:")) else route.continue_())
                    page.set_content(html, wait_until="load", timeout=timeout * 1000)
                    scroll = int(page.evaluate("document.documentElement.scrollWidth"))
                    tall = int(page.evaluate("document.documentElement.scrollHeight"))
                    # Chromium cannot capture a page of tens of thousands of pixels: its top
                    # is what the reader sees first anyway
                    page.screenshot(path=str(png), full_page=True, timeout=timeout * 1000,
                                    clip={"x": 0, "y": 0, "width": width,
                                          "height": min(tall, MAX_SHOT_PX)})
                    page.close()
                    views.append(View(width=width, scroll_width=scroll, png_path=png,
                                      blank=_is_blank(png), height=tall))
            finally:
                chromium.close()
    except PlaywrightError as exc:
        raise ViewError(f"chromium could not render the message: {exc}") from None
    return views


def view_message(msg: EmailMessage, width: int, png_path: str | Path, **kw) -> View:
    return view_html(html_of(msg), width, png_path, **kw)


def check_message(msg: EmailMessage, out_dir: str | Path, stem: str,
                  widths: tuple[int, ...] = WIDTHS) -> tuple[list[View], list[str]]:
    """Views at every width and the problems found (empty when the message reads well)."""
    html = html_of(msg)
    problems = [f"remote content: {ref}" for ref in remote_references(html)]
    views = view_many(html, widths, out_dir, stem)
    for view in views:
        if not view.fits:
            problems.append(f"{view.scroll_width} px wide on a {view.width} px screen")
        if view.blank:
            problems.append(f"blank at {view.width} px")
    return views, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", nargs="+", type=Path, help=".eml files")
    parser.add_argument("--width", type=int, action="append", help="screen width in px (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("exports/email-views"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.messages:
        try:
            views, problems = check_message(read_message(path), args.out, path.stem,
                                            tuple(args.width or WIDTHS))
        except ViewError as exc:
            views, problems = [], [str(exc)]
        sizes = ", ".join(f"{v.width}px: {v.scroll_width} x {v.height} px -> {v.png_path}" for v in views)
        print(f"{path.name}: {'ok' if not problems else '; '.join(problems)}" + (f" ({sizes})" if sizes else ""))
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
