"""Spreadsheet imports: files dropped into the inbox are read safely, validated row by row,
previewed, and committed to the core (products, stock counts, today's sales) or to the
warehouse (historical sales, customers, expenses, lead times).

Modules (no Dagster import anywhere here):

* ``kinds``      — the seven kinds, their columns, synonyms and how a header row is recognised
* ``values``     — cell parsers (text, whole numbers, money, dates, times, e-mail)
* ``reading``    — safe reading of xlsx and CSV into a grid of cells (limits, zip checks,
  encrypted/legacy files, formulas, hidden sheets, merged cells, encodings, delimiters)
* ``validation`` — header mapping, kind detection and row-level errors
* ``workbooks``  — the annotated copy of a rejected file and the preview workbook
* ``templates``  — empty, documented templates per kind (xlsx and csv)
* ``journal``    — ``ops.imports`` and ``ops.import_batches``
* ``commit``     — committing a validated file, batch by batch, resumable
* ``pipeline``   — one file end to end: ``process_file``
* ``scan``       — the inbox listing behind the sensor (cursor, stable files, run keys)
"""

from salesflow.imports.ddl import IMPORTS_DDL

__all__ = ["IMPORTS_DDL"]
