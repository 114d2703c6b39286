"""Sensors of the code location: ``inbox_sensor`` (spreadsheet imports, see ``sensors.inbox``)."""
