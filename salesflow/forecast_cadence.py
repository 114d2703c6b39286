"""The daily forecast without a daily model selection (``ml.forecast_selection``).

Choosing a model per series (``forecast.select``: a rolling-origin backtest of every candidate)
is the expensive part of a forecast; refitting the chosen model on one more day
(``forecast.predict``) is cheap. So the daily run keeps each series' selection and re-selects a
series only when

* it has no selection yet (a new series, or the first run);
* a selection in use is ``every_days`` days old or older (``SALESFLOW_FORECAST_RESELECT_DAYS``,
  7 by default: a panel selected on a Monday is selected again on the next Monday); then every
  series is chosen again, together;
* its history up to the selection day changed since (an import of past sales, a sale moved to
  another day): the fingerprint of those days, stored with the selection, differs;
* the horizon changed, or the run asks for it (``reselect``).

Every other series reuses its selection: ``predict`` refits the chosen model on the history up
to the as-of day and keeps the selection's band quantiles. The selection's backtest rows stay
those of the day it was made.

The series to choose again are passed to ``forecast.select`` on their own. What ``select``
derives from the whole panel (which smooth series count among the ``heavy_top`` largest and
try the heavier candidates, the weekday profile that sparse series are shrunk towards) is then
taken from that subset: the weekly re-selection takes the whole panel, but a new series or one
whose past changed is chosen, until the next weekly day, against the other series chosen with it.

``plan`` decides, ``daily_forecast`` runs it; both are plain Python (no Dagster, no warehouse).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from salesflow import forecast
from salesflow.settings import whole_days_from_env

RESELECT_ENV = "SALESFLOW_FORECAST_RESELECT_DAYS"
DEFAULT_RESELECT_DAYS = 7
# ml.forecast_selection: select()'s rows, the horizon they were made for, the fingerprint of the
# history they saw and why they were made
STORED_COLUMNS = [*forecast.SELECTION_COLUMNS, "horizon", "fingerprint", "reason"]

NO_SELECTION = "no selection yet"
DUE = "selection due (cadence)"
HISTORY_CHANGED = "history before the selection day changed"
HORIZON_CHANGED = "horizon changed"
FORCED = "re-selection asked for by the run"
UNREADABLE = "stored selection unreadable"


def reselect_days(value: int | None = None, environ=None) -> int:
    """Days a selection is kept: ``value`` (the run config) when given, else
    ``SALESFLOW_FORECAST_RESELECT_DAYS``, else 7. 1 re-selects every day."""
    if value is None:
        return whole_days_from_env(RESELECT_ENV, DEFAULT_RESELECT_DAYS, environ=environ)
    if int(value) < 1:
        raise ValueError(f"the forecast re-selection interval must be at least 1 day, got {value}")
    return int(value)


def _groups(series: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each series' days (as day numbers) and values, sorted by day."""
    if series is None or not len(series):
        return {}
    frame = pd.DataFrame({
        "unique_id": series["unique_id"].astype(str).to_numpy(),
        "day": pd.to_datetime(series["ds"]).to_numpy().astype("datetime64[D]").astype(np.int64),
        "y": pd.to_numeric(series["y"].astype(float), errors="coerce").fillna(0.0).to_numpy(float),
    }).sort_values(["unique_id", "day"], kind="stable")
    day, y = frame["day"].to_numpy(), frame["y"].to_numpy()
    return {str(uid): (day[idx], y[idx])
            for uid, idx in frame.groupby("unique_id", sort=True).indices.items()}


def _fingerprint(day: np.ndarray, y: np.ndarray, upto: pd.Timestamp) -> str:
    """Hash of a series' days up to ``upto`` (inclusive): which days it has and their values."""
    keep = day <= np.datetime64(pd.Timestamp(upto).date(), "D").astype(np.int64)
    values = np.round(y[keep], 6) + 0.0  # -0.0 and 0.0 alike
    digest = hashlib.blake2b(digest_size=16)
    digest.update(day[keep].astype("<i8").tobytes())
    digest.update(values.astype("<f8").tobytes())
    return digest.hexdigest()


def fingerprints(series: pd.DataFrame, upto: object | dict[str, object]) -> dict[str, str]:
    """Fingerprint of each series' history up to ``upto`` (one day, or a day per series id)."""
    out = {}
    for uid, (day, y) in _groups(series).items():
        last = upto.get(uid) if isinstance(upto, dict) else upto
        if last is not None:
            out[uid] = _fingerprint(day, y, pd.Timestamp(last))
    return out


@dataclass
class Plan:
    """Which series are re-selected (``reselect``: series id -> why) and which reuse their stored
    selection (``reuse``: the stored rows)."""

    as_of: object
    every_days: int
    reselect: dict[str, str] = field(default_factory=dict)
    reuse: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STORED_COLUMNS))

    def summary(self) -> dict:
        why = pd.Series(list(self.reselect.values()), dtype=object).value_counts().sort_index()
        ages = []
        if len(self.reuse):
            made = pd.to_datetime(self.reuse["selected_as_of"])
            ages = sorted({int(v) for v in (pd.Timestamp(self.as_of) - made).dt.days})
        return {"reselected": len(self.reselect), "reused": int(len(self.reuse)),
                "why": {k: int(v) for k, v in why.items()}, "every_days": self.every_days,
                "reused_selection_age_days": ages}


def latest(stored: pd.DataFrame | None, as_of: object) -> pd.DataFrame:
    """Each series' most recent stored selection made on or before ``as_of``."""
    if stored is None or not len(stored):
        return pd.DataFrame(columns=STORED_COLUMNS)
    s = stored.copy()
    s["selected_as_of"] = pd.to_datetime(s["selected_as_of"]).dt.date
    s = s[s["selected_as_of"] <= pd.Timestamp(as_of).date()]
    s = s.sort_values(["series_id", "selected_as_of"]).drop_duplicates("series_id", keep="last")
    return s.reset_index(drop=True)


def plan(series: pd.DataFrame, as_of: object, stored: pd.DataFrame | None, *, every_days: int,
         horizon: int, force: bool = False) -> Plan:
    """Decide per series of ``series`` (``unique_id, ds, y`` up to ``as_of``) whether to re-select
    or reuse the latest of ``stored`` (``ml.forecast_selection`` rows)."""
    end = pd.Timestamp(as_of).normalize()
    groups = _groups(series)
    last = latest(stored, end).set_index("series_id", drop=False) if stored is not None else None
    out = Plan(as_of=end.date(), every_days=int(every_days))
    reuse = []
    for uid, (day, y) in groups.items():
        row = last.loc[uid] if last is not None and uid in last.index else None
        if force:
            out.reselect[uid] = FORCED
        elif row is None:
            out.reselect[uid] = NO_SELECTION
        elif (end - pd.Timestamp(row["selected_as_of"])).days >= every_days:
            out.reselect[uid] = DUE
        elif pd.isna(row["horizon"]) or int(row["horizon"]) != int(horizon):
            out.reselect[uid] = HORIZON_CHANGED
        elif _fingerprint(day, y, pd.Timestamp(row["selected_as_of"])) != row["fingerprint"]:
            out.reselect[uid] = HISTORY_CHANGED
        else:
            reuse.append(row)
    if reuse and DUE in out.reselect.values():
        # the whole panel is chosen again together, so that what select() derives from the panel
        # sees every series (and a series chosen off-cycle rejoins the weekly day)
        out.reselect.update({str(r["series_id"]): DUE for r in reuse})
        reuse = []
    if reuse:
        out.reuse = pd.DataFrame(reuse)[STORED_COLUMNS].reset_index(drop=True)
    return out


def _readable(rows: pd.DataFrame) -> bool:
    try:
        for text in rows["state"]:
            state = forecast.load_state(text)
            state["members"], state["label"], state["floor"]  # noqa: B018 - what predict reads
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def daily_forecast(
    series: pd.DataFrame,
    as_of: object,
    stored: pd.DataFrame | None,
    horizon: int = 28,
    *,
    every_days: int = DEFAULT_RESELECT_DAYS,
    force: bool = False,
    config: forecast.ForecastConfig | None = None,
    n_jobs: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Plan]:
    """The day's forecast of every series, re-selecting only what ``plan`` says:
    ``(forecast_df, new_selection, new_backtest, plan)``. ``new_selection`` has the
    ``ml.forecast_selection`` columns (``STORED_COLUMNS``) of the series re-selected today,
    ``new_backtest`` their backtest rows; both are empty on a day that reuses everything."""
    p = plan(series, as_of, stored, every_days=every_days, horizon=horizon, force=force)
    if len(p.reuse) and not _readable(p.reuse):
        # stored by a version of the forecast whose state this one does not read: choose again
        p.reselect.update({str(s): UNREADABLE for s in p.reuse["series_id"]})
        p.reuse = pd.DataFrame(columns=STORED_COLUMNS)
    new_sel = pd.DataFrame(columns=STORED_COLUMNS)
    new_bt = pd.DataFrame(columns=forecast.BACKTEST_COLUMNS)
    if p.reselect:
        ids = sorted(p.reselect)
        subset = series[series["unique_id"].astype(str).isin(ids)]
        sel, new_bt = forecast.select(subset, as_of, horizon, config=config, n_jobs=n_jobs)
        if len(sel):
            prints = fingerprints(subset, as_of)
            sel = sel.assign(horizon=int(horizon),
                             fingerprint=[prints.get(str(s)) for s in sel["series_id"]],
                             reason=[p.reselect.get(str(s)) for s in sel["series_id"]])
            new_sel = sel[STORED_COLUMNS].reset_index(drop=True)
    using = pd.concat([f for f in (p.reuse, new_sel) if len(f)], ignore_index=True) \
        if len(p.reuse) or len(new_sel) else new_sel
    if not len(using):
        return pd.DataFrame(columns=forecast.FORECAST_COLUMNS), new_sel, new_bt, p
    try:
        fc = forecast.predict(series, as_of, using[forecast.SELECTION_COLUMNS], horizon,
                              config=config, n_jobs=n_jobs)
    except (ValueError, KeyError, TypeError):
        if not len(p.reuse):
            raise
        # a stored state this version reads but cannot predict from (a model it no longer has)
        every = pd.DataFrame(columns=STORED_COLUMNS)
        fc, new_sel, new_bt, again = daily_forecast(series, as_of, every, horizon, every_days=every_days,
                                                    force=True, config=config, n_jobs=n_jobs)
        again.reselect = {uid: UNREADABLE if uid in set(p.reuse["series_id"].astype(str)) else why
                          for uid, why in {**again.reselect, **p.reselect}.items()}
        new_sel = new_sel.assign(reason=[again.reselect[str(s)] for s in new_sel["series_id"]])
        return fc, new_sel, new_bt, again
    return fc, new_sel, new_bt, p
