"""How cdnow_customers.csv.gz was made (run once by hand; nothing runs this at import or test time).

    python derive_cdnow.py path/to/CDNOW_master.txt cdnow_customers.csv.gz

CDNOW_master.txt is the file `lifetimes/datasets/CDNOW_master.txt` of Lifetimes 0.11.3 (MIT licence):
every purchase (customer id, date, CDs, dollars) of the 23,570 customers who first bought at CDNOW
in the first quarter of 1997, followed until the end of June 1998.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

END = pd.Timestamp("1998-06-30")
LAST_HALF_YEAR = pd.Timestamp("1998-01-01")


def derive(master: str) -> pd.DataFrame:
    raw = pd.read_csv(master, sep=r"\s+", names=["customer", "date", "cds", "dollars"], header=0, dtype={"customer": str})
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    # Several lines on one day are one order.
    orders = raw.groupby(["customer", "date"], as_index=False)[["cds", "dollars"]].sum().sort_values(["customer", "date"])
    first = orders.groupby("customer").first()
    last = orders.groupby("customer")["date"].max()
    repeat = orders[orders.duplicated("customer")]  # every order after the first
    repeats = repeat.groupby("customer")
    table = pd.DataFrame(
        {
            "cohort": first["date"].dt.strftime("%Y-%m"),
            "first_order_cds": first["cds"],
            "first_order_value": first["dollars"].round(2),
            "repeat_orders": repeats.size().reindex(first.index, fill_value=0),
            "recency_days": (last - first["date"]).dt.days,
            "customer_age_days": (END - first["date"]).dt.days,
            "total_cds": orders.groupby("customer")["cds"].sum(),
            "total_value": orders.groupby("customer")["dollars"].sum().round(2),
            "mean_repeat_value": repeats["dollars"].mean().reindex(first.index).round(2),  # empty without repeats
            "bought_1998h1": np.where(last >= LAST_HALF_YEAR, "yes", "no"),
        }
    )
    return table.reset_index(drop=True)


if __name__ == "__main__":
    derive(sys.argv[1]).to_csv(sys.argv[2], index=False)
