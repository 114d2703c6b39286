"""The DuckDB warehouse as a Dagster resource."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
from dagster_duckdb import DuckDBResource
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from salesflow.warehouse import ensure_schema

# Every asset or check that opens the warehouse runs in this pool; dagster.yaml limits it to 1.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(DuckDBResource):
    """The warehouse file: opened with the contract's schemas present and closed in ``finally``."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = Path(self.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may hold the file's lock for a moment (DuckDB has one writer).
        for attempt in Retrying(
            retry=retry_if_exception_type(duckdb.IOException),
            stop=stop_after_delay(120),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            reraise=True,
        ):
            with attempt:
                con = duckdb.connect(str(path), config=dict(self.connection_config))
        try:
            ensure_schema(con)
            yield con
        finally:
            con.close()
