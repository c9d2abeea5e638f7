"""Channel history: the data contract, every bad-row case with its message, and file round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.channels import read_history, validate_history
from nextbest.errors import ConfigError, DataError
from nextbest.simulators.synthesize import holidays, synthesize


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    history, _ = synthesize(channels=3, days=30, seed=3)
    return history.to_table()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_history_round_trips_through_csv_and_parquet(tmp_path, suffix):
    history, _ = synthesize(channels=3, days=40, seed=1)
    back = read_history(history.write(tmp_path / f"history{suffix}"))
    assert back.channels == history.channels
    np.testing.assert_array_equal(back.dates, history.dates)
    np.testing.assert_allclose(back.spend, history.spend)
    for name in ("impressions", "clicks", "conversions", "holiday"):
        np.testing.assert_array_equal(getattr(back, name), getattr(history, name))


def test_rows_in_any_order_pivot_to_the_same_arrays(table):
    shuffled = table.sample(frac=1.0, random_state=0)
    a, b = validate_history(table), validate_history(shuffled)
    np.testing.assert_allclose(a.spend[:, [a.channels.index(c) for c in b.channels]], b.spend)


def test_optional_columns_may_be_left_out(table):
    history = validate_history(table.drop(columns=["conversions", "holiday"]))
    assert history.conversions is None and history.holiday.sum() == 0


def test_shares_are_the_marketers_average_split(table):
    history = validate_history(table)
    spend = table.pivot(index="date", columns="channel", values="spend")[history.channels].to_numpy()
    np.testing.assert_allclose(history.shares(), spend.sum(0) / spend.sum())
    holiday = table.groupby("date")["holiday"].first().to_numpy() == 1
    np.testing.assert_allclose(history.shares(holiday=True), spend[holiday].sum(0) / spend[holiday].sum())


def _bad(table: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    bad = table.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[row - 1, column] = value
    return bad


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (5, "spend", -3.0, "row 5: spend -3 is negative; expected a spend ≥ 0"),
        (7, "spend", "lots", "row 7: spend 'lots' is not a finite number"),
        (4, "clicks", 10**9, "row 4: clicks 1000000000 > impressions"),
        (6, "impressions", 2.5, "row 6: impressions 2.5 is not a count"),
        (3, "conversions", 10**8, "row 3: conversions 100000000 > clicks"),
        (8, "date", "2025-13-01", "row 8: date '2025-13-01' is not a date; expected YYYY-MM-DD"),
        (2, "holiday", 2, "row 2: holiday 2 is not 0 or 1"),
        (9, "channel", " ", "row 9: column 'channel' is empty"),
        (10, "clicks", None, "row 10: column 'clicks' is empty"),
    ],
)
def test_bad_value_names_row_and_expectation(table, row, column, value, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_history(_bad(table, row, column, value), source="h.csv")


def test_missing_date_for_one_channel_is_named(table):
    dropped = table.drop(index=table.index[(table["channel"] == "social") & (table["date"] == "2025-01-05")])
    with pytest.raises(DataError, match="channel 'social' has no row for 2025-01-05; expected one row per channel"):
        validate_history(dropped)


def test_duplicate_date_and_channel_is_named(table):
    doubled = pd.concat([table, table.iloc[[4]]], ignore_index=True)
    with pytest.raises(DataError, match=f"rows 5 and {len(table) + 1}: channel '{table.channel[4]}' on .* appears twice"):
        validate_history(doubled)


def test_unknown_and_missing_columns_are_named(table):
    with pytest.raises(DataError, match="unknown column\\(s\\) 'cost'; expected columns date, channel, spend"):
        validate_history(table.assign(cost=1.0))
    with pytest.raises(DataError, match="missing column\\(s\\) 'impressions'"):
        validate_history(table.drop(columns=["impressions"]))
    with pytest.raises(DataError, match="missing column\\(s\\) 'date', 'channel'.*the table has 'Date', 'Channel', .*column names are lower case"):
        validate_history(table.rename(columns={"date": "Date", "channel": "Channel"}))


def test_holiday_must_agree_across_channels_of_a_date(table):
    bad = table.copy()
    bad.loc[0, "holiday"] = 1 - bad.loc[0, "holiday"]
    with pytest.raises(DataError, match="rows 1 and 2: date 2025-01-01 has holiday .* a holiday is a property of the date"):
        validate_history(bad)


def test_impressions_without_spend_are_refused(table):
    bad = table.copy()
    bad.loc[2, "spend"] = 0.0
    with pytest.raises(DataError, match="row 3: .* impressions with spend 0"):
        validate_history(bad)


def test_synthetic_holidays_are_the_listed_dates():
    dates = np.array(["2025-12-25", "2025-12-27", "2026-07-04", "2026-01-01"], dtype="datetime64[D]")
    np.testing.assert_array_equal(holidays(dates), [1, 0, 1, 1])


def test_synthesize_refuses_too_little_history():
    with pytest.raises(ConfigError, match="--days 7: expected at least 28 days"):
        synthesize(days=7)


@pytest.mark.parametrize("write", [
    lambda d: d.dt.strftime("%Y/%m/%d"),                   # slashes
    lambda d: d.dt.strftime("%Y-%m-%d 00:00:00"),          # a spreadsheet's datetime
    lambda d: d.dt.strftime("%Y-%m-%dT23:30:00+01:00"),    # local time with an offset: the written date counts
    lambda d: d.dt.tz_localize("Asia/Tokyo"),              # Parquet timestamps with a time zone
    lambda d: d.dt.date,                                   # Parquet dates (datetime.date objects)
])
def test_dates_in_other_common_forms_read_as_the_same_days(table, write):
    dates = pd.to_datetime(table["date"])
    history = validate_history(table.assign(date=write(dates)))
    np.testing.assert_array_equal(history.dates, np.unique(dates.to_numpy().astype("datetime64[D]")))


def test_ambiguous_day_month_dates_are_refused(table):
    bad = table.assign(date=pd.to_datetime(table["date"]).dt.strftime("%d/%m/%Y"))
    with pytest.raises(DataError, match="row 1: date '01/01/2025' is not a date; expected YYYY-MM-DD"):
        validate_history(bad)


def test_an_infinite_spend_is_shown_as_a_plain_number(table):
    with pytest.raises(DataError, match=r"row 2: spend inf is not a finite number$"):
        validate_history(_bad(table, 2, "spend", np.float64("inf")))
