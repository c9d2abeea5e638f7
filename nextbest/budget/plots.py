"""Budget figures, drawn from a fitted experiment and computed results; nothing here fits anything.

Each function takes what it draws and an optional matplotlib `ax` (or axes), and returns the figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from nextbest.data.channels import ChannelHistory
from nextbest.figures import axes as _axes
from nextbest.figures import plt
from nextbest.simulators.adstock import lag_weights, log_hill_relative
from nextbest.simulators.response import ResponseParameters

BAND = (0.05, 0.95)


def _grid(n: int, axes=None, size: float = 3.6) -> tuple[Figure, np.ndarray]:
    if axes is not None:
        axes = np.atleast_1d(axes)
        return axes[0].figure, axes
    figure, axes = plt.subplots(1, n, figsize=(size * n, 3.4), layout="constrained", squeeze=False)
    return figure, axes[0]


def response_curves(parameters: ResponseParameters, history: ChannelHistory, axes=None) -> Figure:
    """Expected daily clicks against spend per channel: posterior mean and 90% credible band on an
    average day and on a holiday, over the history's days (holidays marked)."""
    figure, axes = _grid(history.n_channels, axes)
    for c, (ax, name) in enumerate(zip(axes, history.channels)):
        top = history.spend[:, c].max() * 1.3
        spend = np.linspace(top / 200, top, 120)
        grid = np.zeros((len(spend), history.n_channels))
        grid[:, c] = spend
        for holiday, color in ((False, "tab:blue"), (True, "tab:red")):
            clicks = parameters.day(holiday).per_channel(grid)[..., c]  # (draws, points)
            low, high = np.quantile(clicks, BAND, axis=0)
            ax.fill_between(spend, low, high, color=color, alpha=0.25, linewidth=0)
            ax.plot(spend, clicks.mean(axis=0), color=color, label="holiday" if holiday else "average day")
        days = history.holiday == 1
        ax.scatter(history.spend[~days, c], history.clicks[~days, c], s=6, color="tab:blue", alpha=0.35)
        ax.scatter(history.spend[days, c], history.clicks[days, c], s=14, color="tab:red", marker="x", alpha=0.8)
        ax.set_title(name)
        ax.set_xlabel("daily spend")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clicks (curves: expected, 90% band)")
    axes[0].legend(loc="upper left")
    return figure


def predictive_check(idata, metric: str = "clicks", axes=None) -> Figure:
    """Observed daily counts against the posterior-predictive 90% band and median, per channel."""
    observed = idata.observed_data[metric]
    replicated = idata.posterior_predictive[metric].values.reshape(-1, *observed.shape)
    dates = np.asarray(observed.coords["date"].values, "datetime64[D]")
    figure, axes = _grid(observed.shape[1], axes, size=4.2)
    low, median, high = np.quantile(replicated, (BAND[0], 0.5, BAND[1]), axis=0)
    for c, (ax, name) in enumerate(zip(axes, observed.coords["channel"].values)):
        inside = ((observed.values[:, c] >= low[:, c]) & (observed.values[:, c] <= high[:, c])).mean()
        ax.fill_between(dates, low[:, c], high[:, c], color="tab:orange", alpha=0.3, linewidth=0, label="90% predictive")
        ax.plot(dates, median[:, c], color="tab:orange", linewidth=0.8)
        ax.plot(dates, observed.values[:, c], ".", markersize=2.5, color="black", label="observed")
        ax.set_title(f"{name}: {inside:.0%} of days inside")
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"daily {metric}")
    axes[0].legend(loc="upper left")
    return figure


def allocation_comparison(result: dict, ax=None) -> Figure:
    """Each allocation's split (stacked spend) and its expected clicks with the 90% interval."""
    figure, ax = _axes(ax, (7.5, 4))
    names = list(result["baselines"])
    channels = list(result["allocation"])
    bottom = np.zeros(len(names))
    for channel in channels:
        spend = np.array([result["baselines"][n]["allocation"][channel] for n in names])
        ax.bar(names, spend, bottom=bottom, label=channel)
        bottom += spend
    ax.set_ylabel("spend")
    clicks = ax.twinx()
    means = np.array([result["baselines"][n]["expected_clicks"] for n in names])
    intervals = np.array([result["baselines"][n]["clicks_interval"] for n in names])
    clicks.errorbar(names, means, yerr=[means - intervals[:, 0], intervals[:, 1] - means], fmt="ko", capsize=4,
                    label="expected clicks (90%)")
    if all("true_clicks" in result["baselines"][n] for n in names):
        clicks.plot(names, [result["baselines"][n]["true_clicks"] for n in names], "g^", label="true clicks")
    clicks.set_ylabel("expected clicks")
    day = "a holiday" if result["holiday"] else "an average day"
    ax.set_title(f"budget {result['budget']:,.0f} on {day}" + (f" ({result['date']})" if result["date"] else ""))
    ax.legend(loc="lower left", fontsize="small")
    clicks.legend(loc="lower right", fontsize="small")
    return figure


def learning_curve(training: dict, ax=None) -> Figure:
    """The allocator's expected clicks as a share of the optimizer's on held-out days, as it trains."""
    figure, ax = _axes(ax)
    rows = [r for r in training["learning_curve"] if "ratio_to_optimizer" in r]
    ax.plot([r["steps"] for r in rows], [r["ratio_to_optimizer"] for r in rows], "o-", label="PPO allocator")
    ax.axhline(1.0, color="tab:green", linestyle="--", label="optimizer (posterior mean)")
    styles = {"historical": ":", "equal": "-."}
    for name, value in training["baselines_ratio_to_optimizer"].items():
        ax.axhline(value, color="tab:gray", linestyle=styles.get(name, ":"), label=f"{name} split")
    ax.set_xlabel("simulated days")
    ax.set_ylabel("expected clicks / optimizer's")
    ax.set_title(f"PPO allocator, reward {training['reward']}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return figure


def saturation_curves(parameters: ResponseParameters, history: ChannelHistory, axes=None) -> Figure:
    """Carryover model: expected daily clicks against a steady daily spend (the adstock then equals the
    spend), posterior mean and 90% band on an average day, with the history's days and κ marked."""
    figure, axes = _grid(history.n_channels, axes)
    level = np.exp(parameters.alpha + np.log(parameters.ctr) + parameters.trend * parameters.calendar.last)  # (draws, C)
    for c, (ax, name) in enumerate(zip(axes, history.channels)):
        top = history.spend[:, c].max() * 1.5
        spend = np.linspace(top / 200, top, 120)
        steady = np.broadcast_to(spend[None, :, None], (parameters.n_draws, len(spend), history.n_channels))
        clicks = level[:, None, c] * np.exp(log_hill_relative(steady, parameters.spend_center, parameters.slope,
                                                              parameters.saturation)[..., c])
        low, high = np.quantile(clicks, BAND, axis=0)
        ax.fill_between(spend, low, high, color="tab:blue", alpha=0.25, linewidth=0, label="90% band")
        ax.plot(spend, clicks.mean(axis=0), color="tab:blue", label="expected, steady spend")
        ax.scatter(history.spend[:, c], history.clicks[:, c], s=5, color="black", alpha=0.3, label="history (a day)")
        kappa = np.exp(np.median(parameters.saturation[:, c]) + parameters.spend_center[c])
        if kappa < top:
            ax.axvline(kappa, color="tab:gray", linestyle=":", label="half-saturation κ")
        ax.set_title(name)
        ax.set_xlabel("daily spend")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clicks per day")
    axes[0].legend(loc="upper left", fontsize="small")
    return figure


def carryover_curves(parameters: ResponseParameters, channels: list[str], ax=None) -> Figure:
    """The share of a day's effect on each later day (adstock's lag weights), posterior mean and 90% band."""
    figure, ax = _axes(ax)
    weights = lag_weights(parameters.decay, parameters.max_lag)  # (draws, L, C)
    lags = np.arange(parameters.max_lag)
    for c, name in enumerate(channels):
        low, high = np.quantile(weights[..., c], BAND, axis=0)
        ax.fill_between(lags, low, high, alpha=0.2, linewidth=0)
        ax.plot(lags, weights[..., c].mean(axis=0), "o-", markersize=3,
                label=f"{name}: decay {parameters.decay[:, c].mean():.2f}")
    ax.set_xlabel("days after the spend")
    ax.set_ylabel("share of the spend's effect")
    ax.set_title("carryover (geometric adstock)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    return figure


def contributions_over_time(contributions: np.ndarray, dates: np.ndarray, channels: list[str], observed: np.ndarray | None = None,
                            ax=None) -> Figure:
    """Expected clicks each channel's spend bought on each day (posterior means, stacked; the days after the
    history are its spend's carryover), and the observed total clicks. contributions: (draws, days, channels)."""
    figure, ax = _axes(ax, (9, 4))
    mean = contributions.mean(axis=0)
    dates = np.asarray(dates, "datetime64[D]")
    ax.stackplot(dates, mean.T, labels=channels, alpha=0.8)
    if observed is not None:
        ax.plot(dates[: len(observed)], observed, color="black", linewidth=0.7, label="observed clicks")
    ax.set_ylabel("clicks per day")
    ax.set_title("contribution of each channel over time (posterior mean)")
    ax.legend(loc="upper left", fontsize="small", ncols=len(channels) + 1)
    ax.grid(alpha=0.3)
    return figure


def planned_spend(result: dict, ax=None) -> Figure:
    """The planner's spend by day and channel (stacked), from `plan_campaign`'s result."""
    figure, ax = _axes(ax, (9, 4))
    dates = sorted({row["date"] for row in result["plan"]})
    channels = list(dict.fromkeys(row["channel"] for row in result["plan"]))
    spend = {(row["date"], row["channel"]): row["spend"] for row in result["plan"]}
    x = np.asarray(dates, "datetime64[D]")
    bottom = np.zeros(len(dates))
    for channel in channels:
        values = np.array([spend[(d, channel)] for d in dates])
        ax.bar(x, values, bottom=bottom, label=channel)
        bottom += values
    low, high = result["clicks_interval"]
    ax.set_title(f"planned spend: {result['budget']:,.0f} over {result['days']} days; expected clicks "
                 f"{result['expected_clicks']:,.0f} [{low:,.0f}, {high:,.0f}] with {result['carryover_days']} carryover days")
    ax.set_ylabel("spend per day")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(loc="upper left", fontsize="small")
    return figure
