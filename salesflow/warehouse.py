"""The DuckDB warehouse: contract DDL and connection helper (see DESIGN.md, "Warehouse contract")."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

SCHEMAS = ("raw", "marts", "ml", "ops")

RAW_DDL = {
    "raw.products": """
        CREATE TABLE IF NOT EXISTS raw.products (
            id BIGINT, sku VARCHAR, name VARCHAR, price DECIMAL(18,2),
            stock_quantity INTEGER, low_stock_threshold INTEGER, description VARCHAR,
            extracted_at TIMESTAMP)""",
    "raw.inventory": """
        CREATE TABLE IF NOT EXISTS raw.inventory (
            sku VARCHAR, name VARCHAR, category VARCHAR, cost DECIMAL(18,2),
            price DECIMAL(18,2), quantity INTEGER, updated_at TIMESTAMP,
            extracted_at TIMESTAMP)""",
    "raw.sales": """
        CREATE TABLE IF NOT EXISTS raw.sales (
            sale_id BIGINT, sale_ts TIMESTAMP, sale_date DATE, total_amount DECIMAL(18,2),
            customer_id VARCHAR, extracted_at TIMESTAMP)""",
    "raw.sale_items": """
        CREATE TABLE IF NOT EXISTS raw.sale_items (
            sale_id BIGINT, line_no INTEGER, product_id BIGINT, sku VARCHAR,
            product_name VARCHAR, quantity INTEGER, unit_price DECIMAL(18,2),
            subtotal DECIMAL(18,2))""",
    "raw.stock_snapshots": """
        CREATE TABLE IF NOT EXISTS raw.stock_snapshots (
            snapshot_date DATE, sku VARCHAR, stock_quantity INTEGER,
            low_stock_threshold INTEGER)""",
}

ML_DDL = {
    "ml.sales_forecast": """
        CREATE TABLE IF NOT EXISTS ml.sales_forecast (
            as_of DATE, series_id VARCHAR, ds DATE, yhat DOUBLE, yhat_p50 DOUBLE, yhat_lo_80 DOUBLE,
            yhat_hi_80 DOUBLE, yhat_lo_95 DOUBLE, yhat_hi_95 DOUBLE, model VARCHAR)""",
    "ml.forecast_backtest": """
        CREATE TABLE IF NOT EXISTS ml.forecast_backtest (
            as_of DATE, series_id VARCHAR, model VARCHAR, mase DOUBLE, rmsse DOUBLE, smape DOUBLE,
            coverage_80 DOUBLE, coverage_95 DOUBLE, chosen BOOLEAN, reason VARCHAR)""",
    "ml.sales_anomalies": """
        CREATE TABLE IF NOT EXISTS ml.sales_anomalies (
            as_of DATE, series_id VARCHAR, ds DATE, observed DOUBLE, expected DOUBLE,
            lower DOUBLE, upper DOUBLE, score DOUBLE, direction VARCHAR, severity VARCHAR,
            kind VARCHAR, note VARCHAR)""",
    "ml.forecast_selection": """
        CREATE TABLE IF NOT EXISTS ml.forecast_selection (
            selected_as_of DATE, series_id VARCHAR, model VARCHAR, state VARCHAR, horizon INTEGER,
            fingerprint VARCHAR, reason VARCHAR)""",
    "ml.forecast_coverage": """
        CREATE TABLE IF NOT EXISTS ml.forecast_coverage (
            as_of DATE, series_id VARCHAR, status VARCHAR, method VARCHAR, reason VARCHAR,
            history_days INTEGER, sale_days INTEGER, last_sale DATE)""",
}

OPS_DDL = {
    "ops.imports": """
        CREATE TABLE IF NOT EXISTS ops.imports (
            file_sha256 VARCHAR, filename VARCHAR, kind VARCHAR, received_at TIMESTAMP,
            status VARCHAR, rows_total INTEGER, rows_valid INTEGER, rows_rejected INTEGER,
            committed_at TIMESTAMP, message VARCHAR)""",
    "ops.import_batches": """
        CREATE TABLE IF NOT EXISTS ops.import_batches (
            file_sha256 VARCHAR, batch_no INTEGER, first_row INTEGER, last_row INTEGER,
            committed_at TIMESTAMP, detail VARCHAR)""",
    "ops.alerts_sent": """
        CREATE TABLE IF NOT EXISTS ops.alerts_sent (
            alert_key VARCHAR, sent_at TIMESTAMP, recipients VARCHAR, subject VARCHAR)""",
    "ops.alerts_pending": """
        CREATE TABLE IF NOT EXISTS ops.alerts_pending (
            alert_key VARCHAR, kind VARCHAR, created_at TIMESTAMP, recipients VARCHAR,
            subject VARCHAR, payload VARCHAR)""",
    "ops.alert_deliveries": """
        CREATE TABLE IF NOT EXISTS ops.alert_deliveries (
            message_id VARCHAR, created_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR,
            transport VARCHAR, recipients VARCHAR, subject VARCHAR, alert_keys VARCHAR,
            message BLOB, error VARCHAR)""",
}


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every schema and contract table that does not exist yet."""
    from salesflow.customers import CUSTOMER_DDL, CUSTOMER_WIDENED
    from salesflow.expenses import EXPENSES_DDL, EXPENSES_WIDENED
    from salesflow.imports.ddl import IMPORTS_DDL
    from salesflow.intraday import TODAY_DDL
    from salesflow.marts import MARTS_DDL, MARTS_WIDENED, ensure_marts

    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ddl in (
        *RAW_DDL.values(), *MARTS_DDL.values(), *CUSTOMER_DDL.values(), *EXPENSES_DDL.values(),
        *ML_DDL.values(), *OPS_DDL.values(), *IMPORTS_DDL.values(), *TODAY_DDL.values(),
    ):
        con.execute(ddl)
    # warehouses created before these columns existed
    con.execute("ALTER TABLE ml.sales_forecast ADD COLUMN IF NOT EXISTS yhat_p50 DOUBLE")
    con.execute("ALTER TABLE ml.forecast_backtest ADD COLUMN IF NOT EXISTS rmsse DOUBLE")
    ensure_marts(con)
    widen_columns(con, {**MARTS_WIDENED, **CUSTOMER_WIDENED, **EXPENSES_WIDENED})


def widen_columns(con: duckdb.DuckDBPyConnection, types: dict[str, dict[str, str]]) -> None:
    """Give columns of older warehouses the wider types of today's DDL (``{table: {column: type}}``)."""
    current = dict(((f"{s}.{t}", c), ty) for s, t, c, ty in con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database()").fetchall())
    for table, columns in types.items():
        for column, wanted in columns.items():
            if current.get((table, column), wanted) != wanted:
                con.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE {wanted}')


LOCK_TIMEOUT_ENV = "SALESFLOW_WAREHOUSE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 60.0


class WarehouseLockedError(duckdb.IOException):
    """Another process kept the warehouse file locked for longer than the wait allowed."""


def lock_timeout_s(environ=None) -> float:
    """Seconds a connection waits for another process's lock (``SALESFLOW_WAREHOUSE_LOCK_TIMEOUT``)."""
    text = ((os.environ if environ is None else environ).get(LOCK_TIMEOUT_ENV) or "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds, got {text!r}")
    return value


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "could not set lock" in str(exc).lower()


def open_duckdb(path: str | Path, *, read_only: bool = False, config: dict | None = None,
                timeout_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Connect to the file, waiting with backoff (bounded) while another process holds its lock.

    DuckDB lets one process write a file and refuses every other connection meanwhile, read-only
    ones included."""
    timeout = lock_timeout_s() if timeout_s is None else timeout_s
    retrying = Retrying(retry=retry_if_exception(_is_lock_error), stop=stop_after_delay(timeout),
                        wait=wait_random_exponential(multiplier=0.05, max=2), reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
    except duckdb.IOException as exc:
        if not _is_lock_error(exc):
            raise
        raise WarehouseLockedError(
            f"the warehouse {path} is still locked by another process after waiting {timeout:g} s "
            f"(set {LOCK_TIMEOUT_ENV} to wait longer): {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def connect(path: str | Path, *, read_only: bool = False,
            timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file (creating its folder and the contract tables) and always close it.

    While another process holds the file's lock, wait for it (see ``open_duckdb``)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = open_duckdb(path, read_only=read_only, timeout_s=timeout_s)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the open warehouse."""
    return con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?", [schema, table]).fetchone()[0] > 0


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
        "WHERE schema_name IN ('raw','marts','ml','ops') ORDER BY 1, 2"
    ).fetchall()
    out = {}
    for schema, table, _ in rows:
        out[f"{schema}.{table}"] = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
    return out


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit on success, roll back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **frames) -> Iterator[duckdb.DuckDBPyConnection]:
    """Data frames as views named by the keywords, for the statements of the block only."""
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield con
    finally:
        for name in frames:
            con.unregister(name)
