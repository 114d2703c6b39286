"""Emulator of the SalesFlow core (the Java service of JAVA_API.md), quirks included.

- :func:`emulator.server.create_app` — the Starlette app over a SQLite state file;
- :mod:`emulator.seed` — ``seed_csvs`` / ``seed_frames`` from the canonical CSVs;
- :mod:`emulator.testing` — ``running_emulator`` and ``seed_from_frames`` for tests;
- :mod:`emulator.clock` — ``Clock`` / ``FixedClock``, the emulator's time;
- :mod:`emulator.cli` — ``python -m emulator`` (``salesflow emulator``);
- :mod:`emulator.demo` — the demo-shop generator behind ``--demo``.
"""
