"""Warehouse tables that only imports fill: expenses, customers and lead times.

No asset computes them: rows arrive through inbox files (``import_job``), which report each
committed file as a materialization of the table it wrote. Declared here so that lineage shows
them and the marts that read them follow a new import through their automation conditions.
"""

import dagster as dg

RAW_EXPENSES = dg.AssetKey(["raw", "expenses"])
RAW_CUSTOMERS = dg.AssetKey(["raw", "customers"])
RAW_LEAD_TIMES = dg.AssetKey(["raw", "lead_times"])

_ARRIVES = "Arrives through imports (an expenses, customers or lead_times file in the inbox); "

imported_specs = [
    dg.AssetSpec(RAW_EXPENSES, group_name="imports", kinds={"duckdb"},
                 description=_ARRIVES + "one row per expense line. Read by marts.expenses_monthly "
                 "and marts.profit_monthly."),
    dg.AssetSpec(RAW_CUSTOMERS, group_name="imports", kinds={"duckdb"},
                 description=_ARRIVES + "one row per customer id; an id imported again replaces "
                 "its row. No mart reads it yet: the customer marts come from raw.sales."),
    dg.AssetSpec(RAW_LEAD_TIMES, group_name="imports", kinds={"duckdb"},
                 description=_ARRIVES + "days from order to delivery per sku. Read by "
                 "marts.reorder_suggestions."),
]
