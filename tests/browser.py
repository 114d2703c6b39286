"""E-mails in a real browser for the tests: scripts/email_view.py (headless Chromium)."""

from __future__ import annotations

import importlib.util
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "email_view.py"
_spec = importlib.util.spec_from_file_location("email_view", SCRIPT)
email_view = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("email_view", email_view)
_spec.loader.exec_module(email_view)

View = email_view.View


def require_browser() -> str:
    browser = email_view.find_browser()
    if browser is None:
        pytest.skip("chromium is not installed (scripts/system-deps.sh installs it)")
    return browser


def view_message(msg: EmailMessage, width: int, png_path: Path) -> View:
    require_browser()
    return email_view.view_message(msg, width, png_path)


def assert_reads_on_phone(msg: EmailMessage, tmp_path: Path, stem: str = "message") -> list[View]:
    """The message's HTML at 375 and 1024 px: no remote content, nothing wider than the
    screen, and a screenshot that is not blank. Returns the views (their PNGs stay in tmp_path)."""
    require_browser()
    views, problems = email_view.check_message(msg, tmp_path, stem)
    assert not problems, f"{msg['Subject']}: {problems}"
    return views
