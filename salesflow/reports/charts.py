"""Charts as PNG bytes, drawn with matplotlib's Agg backend (no display, no global pyplot state)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from salesflow.reports.content import Report

BLUE = "#1f5fa8"
ORANGE = "#e07b00"
GREY = "#8a8f98"
SEVERITY_COLORS = {"critical": "#b00020", "high": "#e65100", "medium": "#f9a825", "low": "#4a7fb5"}


def _png(fig: Figure, dpi: int) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _money_axis(ax, currency: str) -> None:
    def fmt(v, _pos):
        if abs(v) >= 10_000:
            return f"{v / 1000:,.0f}k"
        return f"{v:,.0f}"
    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.set_ylabel(currency)


def revenue_trend_png(report: Report, *, width_in: float = 9.0, height_in: float = 3.4,
                      dpi: int = 150) -> bytes:
    """Daily revenue of the trend window, the report period shaded, and the forecast with its
    80 % and 95 % bands when there is one."""
    fig = Figure(figsize=(width_in, height_in))
    ax = fig.add_subplot(1, 1, 1)
    days = report.trend.column("sale_date")
    revenue = [float(v) for v in report.trend.column("revenue")]
    period = report.period
    ax.axvspan(period.start - timedelta(hours=12), period.end + timedelta(hours=12),
               color="#e8eef7", zorder=0, label="Report period")
    if days:
        ax.plot(days, revenue, color=BLUE, linewidth=1.6, marker="o" if len(days) <= 35 else None,
                markersize=2.5, label="Revenue", zorder=3)
    fc = report.forecast
    if fc.rows:
        ds = fc.column("ds")
        as_float = lambda key: [float(v) if v is not None else float("nan") for v in fc.column(key)]  # noqa: E731
        ax.fill_between(ds, as_float("yhat_lo_95"), as_float("yhat_hi_95"), color=ORANGE,
                        alpha=0.15, linewidth=0, label="95 % band", zorder=1)
        ax.fill_between(ds, as_float("yhat_lo_80"), as_float("yhat_hi_80"), color=ORANGE,
                        alpha=0.30, linewidth=0, label="80 % band", zorder=2)
        ax.plot(ds, as_float("yhat"), color=ORANGE, linestyle="--", linewidth=1.4,
                label="Forecast", zorder=3)
    if not days and not fc.rows:
        ax.text(0.5, 0.5, "No sales data for this window", transform=ax.transAxes,
                ha="center", va="center", color=GREY)
    locator = AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    _money_axis(ax, report.currency)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("Daily revenue" + (" and forecast" if fc.rows else ""), fontsize=11, loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, frameon=False, ncols=5)
    fig.tight_layout()
    return _png(fig, dpi)


def _hbar_png(labels: Sequence[str], values: Sequence[float], title: str, currency: str, *,
              width_in: float, dpi: int, color: str = BLUE) -> bytes:
    height = max(1.6, 0.32 * len(labels) + 0.9)
    fig = Figure(figsize=(width_in, height))
    ax = fig.add_subplot(1, 1, 1)
    clean = [" ".join(str(label).split()) for label in labels]
    shown = [label if len(label) <= 38 else label[:37] + "…" for label in clean]
    ax.barh(range(len(values)), values, color=color)
    ax.set_yticks(range(len(values)), shown, fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_xlabel(currency)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return _png(fig, dpi)


def top_products_png(report: Report, *, width_in: float = 9.0, dpi: int = 150) -> bytes | None:
    rows = report.top_products.records()
    if not rows:
        return None
    labels = [f"{r['product_name']} ({r['sku']})" for r in rows]
    return _hbar_png(labels, [float(r["revenue"]) for r in rows], "Revenue by product",
                     report.currency, width_in=width_in, dpi=dpi)


def expenses_png(report: Report, *, width_in: float = 9.0, dpi: int = 150,
                 limit: int = 10) -> bytes | None:
    """The month's expenses by category, largest first; beyond ``limit`` categories the rest
    are one "Other" bar, so the chart keeps a readable height."""
    rows = report.expenses.records()
    if not rows:
        return None
    labels = [r["category"] for r in rows[:limit]]
    values = [float(r["amount"]) for r in rows[:limit]]
    if len(rows) > limit:
        labels.append(f"Other ({len(rows) - limit} categories)")
        values.append(sum(float(r["amount"]) for r in rows[limit:]))
    return _hbar_png(labels, values, report.expenses.title, report.currency, width_in=width_in,
                     dpi=dpi, color=GREY)


def anomaly_chart_png(points: Sequence[dict], *, width_in: float = 6.0, dpi: int = 120) -> bytes | None:
    """Each anomaly against its expected band, scaled so that the expected value is 100 %.

    ``points``: dicts with ``label``, ``observed``, ``expected``, ``lower``, ``upper`` and
    ``severity``; points without a positive expected value are left out."""
    usable = [p for p in points if p.get("expected") not in (None, 0) and p["expected"] > 0
              and p.get("observed") is not None]
    if not usable:
        return None
    usable = usable[:12]
    fig = Figure(figsize=(width_in, max(1.8, 0.36 * len(usable) + 1.0)))
    ax = fig.add_subplot(1, 1, 1)
    for i, p in enumerate(usable):
        exp = float(p["expected"])
        lo = float(p["lower"]) / exp * 100 if p.get("lower") is not None else 100.0
        hi = float(p["upper"]) / exp * 100 if p.get("upper") is not None else 100.0
        ax.plot([lo, hi], [i, i], color="#9db6d6", linewidth=7, solid_capstyle="butt", zorder=1)
        ax.plot([100], [i], marker="|", color=BLUE, markersize=12, zorder=2)
        color = SEVERITY_COLORS.get(str(p.get("severity", "")).lower(), GREY)
        ax.plot([float(p["observed"]) / exp * 100], [i], marker="o", color=color, markersize=7,
                zorder=3)
    ax.set_yticks(range(len(usable)), [" ".join(str(p["label"]).split())[:40] for p in usable],
                  fontsize=8)
    ax.set_ylim(len(usable) - 0.4, -0.6)
    ax.set_title("Anomalies against their expected band", fontsize=10, loc="left")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f} %"))
    ax.set_xlabel("observed as % of expected (bar: expected band)", fontsize=8)
    ax.set_xlim(left=0)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png(fig, dpi)
