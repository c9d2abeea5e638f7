"""Channel history: one row per date and channel, validated into (days, channels) arrays.

    history = read_history("history.csv")        # DataError naming the row on any bad input
    history.spend                                  # (days, channels) float64, in currency units

Columns: `date`, `channel`, `spend`, `impressions`, `clicks`, optional `conversions` and
`holiday` (0/1, a property of the date). Rows count from 1, header excluded. Every channel
needs exactly one row per date that appears in the table: a missing day is an error, never
filled in silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.encoding import parse_flags, shown
from nextbest.data.tables import read_table, write_table
from nextbest.errors import ConfigError, DataError

REQUIRED = ["date", "channel", "spend", "impressions", "clicks"]
OPTIONAL = ["conversions", "holiday"]
DATE_FORMS = "YYYY-MM-DD (YYYY/MM/DD and a time after the date are accepted too)"
# Year, month, day (separated by - / or .), then an optional time of day and UTC offset, which are
# ignored: a row is a day, and its date is the one written (never shifted to another time zone).
_DATE = (r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
         r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")


@dataclass(frozen=True)
class ChannelHistory:
    """dates: (days,) datetime64[D], sorted; channels: names in order of first appearance;
    spend: (days, channels) float64; impressions, clicks, conversions: (days, channels) int64
    (conversions None when the table has none); holiday: (days,) int64 of 0/1."""

    dates: np.ndarray
    channels: list[str]
    spend: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray | None
    holiday: np.ndarray

    @property
    def n_days(self) -> int:
        return len(self.dates)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def budgets(self) -> np.ndarray:
        """(days,) total spend per day."""
        return self.spend.sum(axis=1)

    def shares(self, holiday: bool | None = None) -> np.ndarray:
        """(channels,) the marketers' average split: total spend per channel over total spend,
        on holidays only, on other days only, or (None) on all days."""
        rows = np.ones(self.n_days, bool) if holiday is None else self.holiday == int(holiday)
        if not rows.any():  # e.g. no holiday in the history: fall back to every day
            rows = np.ones(self.n_days, bool)
        totals = self.spend[rows].sum(axis=0)
        return totals / totals.sum()

    def to_table(self) -> pd.DataFrame:
        """The long table (one row per date and channel), as read."""
        days, channels = np.meshgrid(np.arange(self.n_days), np.arange(self.n_channels), indexing="ij")
        table = pd.DataFrame(
            {
                "date": pd.to_datetime(self.dates[days.ravel()]).strftime("%Y-%m-%d"),
                "channel": np.asarray(self.channels, dtype=object)[channels.ravel()],
                "spend": self.spend.ravel(),
                "impressions": self.impressions.ravel(),
                "clicks": self.clicks.ravel(),
            }
        )
        if self.conversions is not None:
            table["conversions"] = self.conversions.ravel()
        table["holiday"] = self.holiday[days.ravel()]
        return table

    def write(self, path: str | Path) -> Path:
        return write_table(self.to_table(), path)


def read_history(path: str | Path) -> ChannelHistory:
    """Read and validate a channel history (CSV or Parquet); any bad row raises DataError."""
    return validate_history(read_table(path), source=str(path))


def validate_history(table: pd.DataFrame, source: str = "history") -> ChannelHistory:
    """Check the data contract row by row and pivot to (days, channels) arrays."""
    _check_columns(table, source)
    table = table.reset_index(drop=True)
    for column in table.columns:
        empty = table[column].isna().to_numpy()
        if empty.any():
            raise DataError(f"{source}: row {_row(empty)}: column '{column}' is empty")
    dates = _dates(table["date"], source)
    channels = table["channel"].astype(str).str.strip().to_numpy()
    if (channels == "").any():
        raise DataError(f"{source}: row {_row(channels == '')}: column 'channel' is empty")
    spend = _numbers(table["spend"], "spend", source)
    if (spend < 0).any():
        row = _row(spend < 0)
        raise DataError(f"{source}: row {row}: spend {spend[row - 1]:g} is negative; expected a spend ≥ 0")
    counts = {c: _counts(table[c], c, source) for c in ("impressions", "clicks", "conversions") if c in table}
    _check_order(counts, "clicks", "impressions", channels, dates, source)
    if "conversions" in counts:
        _check_order(counts, "conversions", "clicks", channels, dates, source)
    paid = (spend == 0) & (counts["impressions"] > 0)
    if paid.any():
        row = _row(paid)
        raise DataError(
            f"{source}: row {row}: {counts['impressions'][row - 1]} impressions with spend 0 ('{channels[row - 1]}', "
            f"{dates[row - 1]}); the response model explains paid impressions by spend, so a day without spend has none"
        )
    holiday = _holiday(table, source)

    duplicated = pd.DataFrame({"d": dates, "c": channels}).duplicated(keep=False).to_numpy()
    if duplicated.any():
        first, second = np.flatnonzero(duplicated)[:2] + 1
        raise DataError(
            f"{source}: rows {first} and {second}: channel '{channels[first - 1]}' on {dates[first - 1]} appears twice; "
            "expected one row per date and channel"
        )
    names = list(dict.fromkeys(channels))
    all_dates = np.unique(dates)
    day = np.searchsorted(all_dates, dates)
    channel = pd.Index(names).get_indexer(channels)
    present = np.zeros((len(all_dates), len(names)), bool)
    present[day, channel] = True
    for c, name in enumerate(names):
        missing = all_dates[~present[:, c]]
        if len(missing):
            more = f" (and {len(missing) - 1} other dates)" if len(missing) > 1 else ""
            raise DataError(
                f"{source}: channel '{name}' has no row for {missing[0]}{more}; "
                "expected one row per channel for every date in the table"
            )
    mixed = pd.Series(holiday).groupby(day).transform("nunique").to_numpy() > 1
    if mixed.any():
        first = _row(mixed) - 1
        other = int(np.flatnonzero((day == day[first]) & (holiday != holiday[first]))[0])
        raise DataError(
            f"{source}: rows {first + 1} and {other + 1}: date {dates[first]} has holiday {holiday[first]} for "
            f"'{channels[first]}' but {holiday[other]} for '{channels[other]}'; a holiday is a property of the date"
        )
    day_holiday = np.zeros(len(all_dates), np.int64)
    day_holiday[day] = holiday

    def grid(values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(all_dates), len(names)), values.dtype)
        out[day, channel] = values
        return out

    return ChannelHistory(
        dates=all_dates,
        channels=names,
        spend=grid(spend),
        impressions=grid(counts["impressions"]),
        clicks=grid(counts["clicks"]),
        conversions=grid(counts["conversions"]) if "conversions" in counts else None,
        holiday=day_holiday,
    )


def _check_columns(table: pd.DataFrame, source: str) -> None:
    expected = f"expected columns {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}"
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        has = ", ".join(map(repr, map(str, table.columns[:12])))
        case = "; column names are lower case" if any(str(c).lower() in missing for c in table.columns) else ""
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; {expected} (the table has {has}{case})")
    unknown = [str(c) for c in table.columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise DataError(f"{source}: unknown column(s) {', '.join(map(repr, unknown))}; {expected}")
    repeated = table.columns[table.columns.duplicated()].tolist()
    if repeated:
        raise DataError(f"{source}: column(s) {repeated} appear more than once")


def _row(mask: np.ndarray) -> int:
    """The first True position as a 1-based row number."""
    return int(np.flatnonzero(mask)[0]) + 1


def parse_dates(values: pd.Series) -> pd.Series:
    """Calendar dates (datetime64, NaT where a value is not a date) from date-like values: datetimes
    (time-zone aware ones keep their local date), `datetime.date`s, or text such as `2025-01-03`,
    `2025/01/03` or `2025-01-03 00:00:00+01:00`. Ambiguous forms such as `03/01/2025` are not dates."""
    if pd.api.types.is_datetime64_any_dtype(values):
        local = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
        return local.dt.floor("D")
    fields = values.astype(str).str.strip().str.extract(f"^{_DATE}$").astype(float)
    fields.columns = ["year", "month", "day"]
    return pd.to_datetime(fields, errors="coerce")


def parse_date(text: str, flag: str) -> str:
    """One date given on the command line, as YYYY-MM-DD; ConfigError naming `flag` otherwise."""
    parsed = parse_dates(pd.Series([text], dtype=object)).iloc[0]
    if pd.isna(parsed):
        raise ConfigError(f"{flag} {text!r} is not a date; expected {DATE_FORMS}")
    return parsed.strftime("%Y-%m-%d")


def _dates(column: pd.Series, source: str) -> np.ndarray:
    parsed = parse_dates(column)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = _row(bad)
        raise DataError(f"{source}: row {row}: date {shown(column.iloc[row - 1])} is not a date; expected {DATE_FORMS}")
    return parsed.to_numpy().astype("datetime64[D]")


def _numbers(column: pd.Series, name: str, source: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _row(bad)
        raise DataError(f"{source}: row {row}: {name} {shown(column.iloc[row - 1])} is not a finite number")
    return values


def _counts(column: pd.Series, name: str, source: str) -> np.ndarray:
    values = _numbers(column, name, source)
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        row = _row(bad)
        raise DataError(f"{source}: row {row}: {name} {values[row - 1]:g} is not a count; expected a whole number ≥ 0")
    return values.astype(np.int64)


def _check_order(counts: dict, part: str, whole: str, channels: np.ndarray, dates: np.ndarray, source: str) -> None:
    """`part` ≤ `whole` on every row (clicks ≤ impressions, conversions ≤ clicks)."""
    bad = counts[part] > counts[whole]
    if bad.any():
        row = _row(bad)
        raise DataError(
            f"{source}: row {row}: {part} {counts[part][row - 1]} > {whole} {counts[whole][row - 1]} "
            f"('{channels[row - 1]}', {dates[row - 1]}); {part} cannot exceed {whole}"
        )


def _holiday(table: pd.DataFrame, source: str) -> np.ndarray:
    if "holiday" not in table:
        return np.zeros(len(table), np.int64)
    column = table["holiday"]
    flags, bad = parse_flags(column)
    if bad.any():
        row = _row(bad)
        raise DataError(f"{source}: row {row}: holiday {shown(column.iloc[row - 1])} is not 0 or 1")
    return flags.astype(np.int64)
