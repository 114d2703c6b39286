"""Forecasts, their backtest, and anomalies on sales and stock (``ml.*``)."""

import base64
from typing import Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.extract import RAW_STOCK_SNAPSHOTS
from assets.marts import DAILY_SALES, PRODUCT_DAILY_SALES
from assets.reports import SALES_ANOMALIES, SALES_FORECAST
from pipelines.automation import FOLLOW_UPSTREAM
from pipelines.partitions import SHOP, daily_partitions, partition_dates
from resources import WAREHOUSE_POOL, WarehouseResource
from salesflow import anomalies, forecast, forecast_cadence, forecast_fallback
from salesflow.warehouse import registered, transaction

FORECAST_BACKTEST = dg.AssetKey(["ml", "forecast_backtest"])
CATALOGUE_SQL = """
    SELECT p.sku, any_value(i.category) AS category
    FROM (SELECT DISTINCT sku FROM raw.products WHERE sku IS NOT NULL) p
    LEFT JOIN (SELECT sku, category FROM raw.inventory WHERE category IS NOT NULL) i USING (sku)
    GROUP BY p.sku ORDER BY p.sku"""


class ForecastRunConfig(dg.Config):
    horizon_days: int = Field(default=28, description="Days forecast after the as-of day")
    n_jobs: int = Field(default=1, description=(
        "Processes for model fitting. More than 1 forks worker processes from the run's "
        "process, which is only safe when no other threads run in it (a run's process has some)"))
    reselect_every_days: Optional[int] = Field(default=None, description=(
        "Days a series keeps its chosen model before the backtest chooses again (1: every day); "
        f"unset: ${forecast_cadence.RESELECT_ENV}, else {forecast_cadence.DEFAULT_RESELECT_DAYS}"))
    reselect: bool = Field(default=False, description="Choose every series' model again today")


class AnomalyRunConfig(dg.Config):
    lookback_days: int = Field(default=7, description="Days (ending on the as-of day) reported")


def _inputs(con, as_of):
    daily = con.execute("SELECT sale_date, orders, revenue FROM marts.daily_sales WHERE sale_date <= ? "
                        "ORDER BY sale_date", [as_of]).df()
    product_daily = con.execute("SELECT sale_date, sku, orders, units, revenue FROM marts.product_daily_sales "
                                "WHERE sale_date <= ? ORDER BY sale_date, sku", [as_of]).df()
    return daily, product_daily


def _replace(con, table: str, as_of, frame: pd.DataFrame, *, within: bool = False) -> None:
    """Replace the ``as_of`` rows of ``table`` (in a transaction of its own unless ``within`` one)."""
    if not within:
        with transaction(con):
            return _replace(con, table, as_of, frame, within=True)
    con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
    if len(frame):
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        with registered(con, _ml_rows=frame):
            con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _ml_rows")


def _replace_series(con, table: str, day_column: str, day, frame: pd.DataFrame) -> None:
    """Replace the rows of ``day`` of the series in ``frame`` only (the other series keep theirs);
    inside the caller's transaction."""
    with registered(con, _ml_rows=frame):
        con.execute(f"DELETE FROM {table} WHERE {day_column} = ? AND series_id IN "
                    "(SELECT DISTINCT series_id FROM _ml_rows)", [day])
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _ml_rows")


def _png_md(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(SALES_FORECAST, group_name="ml", kinds={"duckdb", "statsforecast"},
                     partitions_def=daily_partitions, deps=[DAILY_SALES, PRODUCT_DAILY_SALES],
                     automation_condition=FOLLOW_UPSTREAM,
                     description="Daily forecast after the as-of day for TOTAL (revenue) and every sku "
                                 "with enough history (units), the others of the catalogue from their "
                                 "recent rate or their category's profile: the mean (yhat, for "
                                 "planning), the median (yhat_p50) and 80% and 95% bands (whole units "
                                 "for skus). Why each product has the forecast it has (or none) is in "
                                 "ml.forecast_coverage; the chosen models in ml.forecast_selection."),
        dg.AssetSpec(FORECAST_BACKTEST, group_name="ml", kinds={"duckdb"}, partitions_def=daily_partitions,
                     deps=[DAILY_SALES, PRODUCT_DAILY_SALES], automation_condition=FOLLOW_UPSTREAM,
                     description="Rolling-origin backtest per series and candidate model, written on "
                                 "the day a series' model is chosen: MASE of the median, RMSSE of the "
                                 "mean, sMAPE, interval coverage, the chosen model and why."),
    ],
    check_specs=[dg.AssetCheckSpec("bands_are_ordered", asset=SALES_FORECAST, blocking=True,
                                   description="lo95 <= lo80 <= yhat, yhat_p50 <= hi80 <= hi95, none negative")],
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def forecasts(context: dg.AssetExecutionContext, config: ForecastRunConfig, warehouse: WarehouseResource):
    """A range run (a backfill) forecasts from its last day only. Each series keeps its chosen
    model (``ml.forecast_selection``), refitted on each new day; every series is chosen again
    when a selection in use is ``reselect_every_days`` old, and a single one when its history
    up to its selection day changed (past sales imported or moved) or it has none yet. Every
    catalogue sku without a model gets a fallback forecast or a reason (``ml.forecast_coverage``)."""
    _, as_of = partition_dates(context)
    every = forecast_cadence.reselect_days(config.reselect_every_days)
    with warehouse.get_connection() as con:
        daily, product_daily = _inputs(con, as_of)
        series = forecast.build_series(daily, product_daily, as_of)
        if series.empty:
            raise dg.Failure(f"no sales up to {as_of}: nothing to forecast", allow_retries=False)
        stored = con.execute(
            f"SELECT {', '.join(forecast_cadence.STORED_COLUMNS)} FROM ml.forecast_selection "
            "WHERE selected_as_of <= ? QUALIFY row_number() OVER "
            "(PARTITION BY series_id ORDER BY selected_as_of DESC) = 1", [as_of]).df()
        fc, sel, bt, plan = forecast_cadence.daily_forecast(
            series, as_of, stored, config.horizon_days, every_days=every, force=config.reselect,
            n_jobs=config.n_jobs)
        catalogue = con.execute(CATALOGUE_SQL).df()
        fallback, coverage = forecast_fallback.fallback_forecast(
            product_daily, catalogue, fc, as_of, config.horizon_days, daily=daily)
        rows = pd.concat([f for f in (fc, fallback) if len(f)], ignore_index=True) if len(fallback) else fc
        # all or nothing: a selection is never stored without its backtest and forecast
        with transaction(con):
            _replace(con, "ml.sales_forecast", as_of, rows, within=True)
            _replace(con, "ml.forecast_coverage", as_of, coverage, within=True)
            if len(sel):
                _replace_series(con, "ml.forecast_selection", "selected_as_of", as_of, sel)
                _replace_series(con, "ml.forecast_backtest", "as_of", as_of, bt)
        # the backtest of each series' selection in use (made today or on an earlier day)
        used = pd.concat([f for f in (plan.reuse, sel) if len(f)], ignore_index=True)[
            ["selected_as_of", "series_id"]] if len(plan.reuse) or len(sel) else sel
        used = used.assign(selected_as_of=pd.to_datetime(used["selected_as_of"]).dt.date)
        with registered(con, _used=used):
            current_bt = con.execute(
                "SELECT b.* FROM ml.forecast_backtest b JOIN _used u ON b.series_id = u.series_id "
                "AND b.as_of = u.selected_as_of ORDER BY b.series_id, b.model").df() if len(used) \
                else bt
        disordered = con.execute(
            """SELECT series_id, ds FROM ml.sales_forecast WHERE as_of = ? AND NOT (
                   0 <= yhat_lo_95 AND yhat_lo_95 <= yhat_lo_80 AND yhat_lo_80 <= yhat
                   AND yhat <= yhat_hi_80 AND yhat_hi_80 <= yhat_hi_95
                   AND yhat_lo_80 <= yhat_p50 AND yhat_p50 <= yhat_hi_80) LIMIT 10""", [as_of]).fetchall()
    selection = plan.summary()
    context.log.info(f"forecast selection on {as_of}: re-selected {selection['reselected']} series "
                     f"({selection['why'] or 'none'}), reused {selection['reused']}")
    chart = forecast.forecast_chart_png(series, rows, forecast.TOTAL, title=f"TOTAL revenue ({SHOP.currency})")
    yield dg.MaterializeResult(asset_key=SALES_FORECAST, metadata={
        "as_of": str(as_of), "dagster/row_count": len(rows), "series": int(rows["series_id"].nunique()),
        "horizon_days": config.horizon_days,
        "models": dg.MetadataValue.json(rows.drop_duplicates("series_id")["model"].value_counts().to_dict()
                                        if len(rows) else {}),
        "coverage": dg.MetadataValue.json(forecast_fallback.coverage_summary(coverage)),
        "selection": dg.MetadataValue.json(selection),
        "chart": dg.MetadataValue.md(_png_md(chart, "TOTAL: actuals and forecast band")),
    })
    made = sorted({str(d) for d in pd.to_datetime(current_bt["as_of"]).dt.date}) if len(current_bt) else []
    yield dg.MaterializeResult(asset_key=FORECAST_BACKTEST, metadata={
        "as_of": str(as_of), "dagster/row_count": len(current_bt), "rows_written_today": len(bt),
        "selections_made_on": dg.MetadataValue.json(made),
        "summary": dg.MetadataValue.md(forecast.backtest_summary_markdown(current_bt)),
        "chart": dg.MetadataValue.md(_png_md(chart, "TOTAL: actuals and forecast band")),
    })
    yield dg.AssetCheckResult(check_name="bands_are_ordered", asset_key=SALES_FORECAST, passed=not disordered,
                              metadata={"examples": dg.MetadataValue.json([[s, str(d)] for s, d in disordered])})


@dg.asset(
    key=SALES_ANOMALIES, group_name="ml", kinds={"duckdb"}, partitions_def=daily_partitions,
    deps=[DAILY_SALES, PRODUCT_DAILY_SALES, RAW_STOCK_SNAPSHOTS], pool=WAREHOUSE_POOL,
    automation_condition=FOLLOW_UPSTREAM, backfill_policy=dg.BackfillPolicy.single_run(),
    description="Unusual days of TOTAL and each sku, scored on orders, units or revenue, whichever "
                "carries the signal at the data's grain (spike or drop, severity, expected value and "
                "band); stock-outs, shop outages and level shifts as one row from their first day; "
                "days the shop does not trade raise nothing; stock that fell by more than the units "
                "sold. A range run reports every day of its range.",
)
def sales_anomalies(context: dg.AssetExecutionContext, config: AnomalyRunConfig,
                    warehouse: WarehouseResource) -> dg.MaterializeResult:
    start, as_of = partition_dates(context)
    lookback = max(config.lookback_days, (as_of - start).days + 1)
    with warehouse.get_connection() as con:
        daily, product_daily = _inputs(con, as_of)
        # orders and revenue per day too: scores count orders (one customer buying a case is not
        # a spike) and cut-price days (promotions) do not alarm
        series = forecast.build_series(daily, product_daily, as_of, min_history=28, min_sale_days=1,
                                       detail=True)
        found = anomalies.detect_sales_anomalies(
            series, as_of, lookback,
            config=anomalies.SalesAnomalyConfig(currency=SHOP.currency, closed_days=SHOP.closed_days))
        snapshots = con.execute("SELECT snapshot_date, sku, stock_quantity FROM raw.stock_snapshots "
                                "WHERE snapshot_date <= ?", [as_of]).df()
        stock = anomalies.detect_stock_anomalies(snapshots, product_daily[["sale_date", "sku", "units"]],
                                                 as_of, lookback)
        rows = pd.concat([f for f in (found, stock) if len(f)], ignore_index=True) if len(found) or len(stock) \
            else found
        _replace(con, "ml.sales_anomalies", as_of, rows)
    preview = rows.sort_values("score", ascending=False).head(10) if len(rows) else rows
    return dg.MaterializeResult(metadata={
        "as_of": str(as_of), "days_scanned": lookback, "dagster/row_count": len(rows),
        "by_severity": dg.MetadataValue.json(rows["severity"].value_counts().to_dict() if len(rows) else {}),
        "top": dg.MetadataValue.md(preview[["series_id", "ds", "observed", "expected", "direction", "severity",
                                            "kind"]].to_markdown(index=False) if len(preview) else "_none_"),
    })


ml_assets = [forecasts, sales_anomalies]
