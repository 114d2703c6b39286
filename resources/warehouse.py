"""The DuckDB warehouse as a Dagster resource."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from salesflow.warehouse import ensure_schema, open_duckdb

# Every asset or check that opens the warehouse runs in this pool; dagster.yaml limits it to 1.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(DuckDBResource):
    """The warehouse file: opened with the contract's schemas present and closed in ``finally``."""

    lock_timeout_s: Optional[float] = Field(
        default=None, description="Seconds to wait while another process holds the file's lock "
        "(default: SALESFLOW_WAREHOUSE_LOCK_TIMEOUT, else 60)")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = Path(self.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may hold the file's lock for a moment (DuckDB has one writer).
        con = open_duckdb(path, config=dict(self.connection_config), timeout_s=self.lock_timeout_s)
        try:
            ensure_schema(con)
            yield con
        finally:
            con.close()
