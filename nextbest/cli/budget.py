"""`nextbest budget synthesize|fit|allocate|train|report`: split a daily budget across marketing channels."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, error_console, progress_bar, save_json
from nextbest.errors import ConfigError, ExperimentError
from nextbest.simulators.adstock import MAX_LAG

budget = typer.Typer(help="Budget allocation: a Bayesian response model of each channel, and the best split of a budget.",
                     no_args_is_help=True)
app.add_typer(budget, name="budget")

DIR_HELP = "Budget experiment directory (written by `nextbest budget fit`)."
TRUTH_HELP = "True parameters of a synthetic history (from `budget synthesize --truth`): adds the true optimum."


@budget.command()
def synthesize(
    channels: int = typer.Option(3, "--channels", help="Number of channels (search, social, display, …)."),
    days: int = typer.Option(365, "--days", help="Days of history, from --start."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    output: Path = typer.Option(..., "--output", help="History table to write (CSV or Parquet)."),
    truth: Path | None = typer.Option(None, "--truth", help="Also write the true parameters as JSON here."),
    start: str = typer.Option("2025-01-01", "--start", help="First date, YYYY-MM-DD."),
    conversions: bool = typer.Option(True, "--conversions/--no-conversions", help="Include a conversions column."),
    model: str = typer.Option("hill", "--model", help="The true model: hill (carryover and saturation) or power (day by day)."),
    decay: float | None = typer.Option(None, "--decay", help="Every channel's adstock decay (hill; default: each its own)."),
) -> None:
    """Draw a realistic channel history from a known response model (and keep the truth)."""
    from nextbest.data.tables import table_format
    from nextbest.io import write_json
    from nextbest.simulators.synthesize import synthesize as draw
    from nextbest.simulators.synthesize import synthesize_carryover

    table_format(output)
    if model not in ("hill", "power"):
        raise ConfigError(f"--model {model!r}: expected hill or power")
    if model == "power" and decay is not None:
        raise ConfigError("--decay is a parameter of the hill model; the power model has no carryover")
    if model == "hill":
        history, parameters = synthesize_carryover(channels, days, seed, start, conversions, decay)
    else:
        history, parameters = draw(channels, days, seed, start, conversions)
    history.write(output)
    if truth is not None:
        write_json(truth, parameters.to_dict())
    console.print(f"wrote {history.n_days} days × {history.n_channels} channels ({', '.join(history.channels)}) "
                  f"to {output}" + (f", true parameters to {truth}" if truth else ""))


@budget.command()
def fit(
    history: Path = typer.Argument(..., help="Channel history: date, channel, spend, impressions, clicks[, conversions, holiday]."),
    experiment_dir: Path = typer.Option(..., "--experiment-dir", help="Directory to save the posterior in."),
    draws: int = typer.Option(2000, "--draws", help="Posterior draws per chain."),
    chains: int = typer.Option(2, "--chains", help="Independent MCMC chains."),
    warmup: int = typer.Option(300, "--warmup", help="Warmup iterations per chain."),
    target_accept: float = typer.Option(0.85, "--target-accept", help="NUTS target acceptance; raise it (0.95) if there are divergences."),
    max_rhat: float = typer.Option(1.01, "--max-rhat", help="Refuse the fit above this split R-hat."),
    min_ess: float = typer.Option(100, "--min-ess", help="Refuse the fit below this bulk or tail effective sample size per chain."),
    model: str = typer.Option("hill", "--model", help="hill: adstock (carryover) and Hill saturation; power: the day-by-day power law."),
    max_lag: int = typer.Option(MAX_LAG, "--max-lag", help="Days a spend keeps working in the hill model (adstock's maximum lag)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already fitted in the directory."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Fit the Bayesian response model by MCMC; save the posterior (NetCDF) and a posterior-predictive check."""
    from pydantic import ValidationError

    from nextbest.budget.experiment import FitDiagnosticsError, fit_experiment
    from nextbest.simulators.fit import FitConfig

    if (experiment_dir / "budget.json").is_file() and not overwrite:
        raise ExperimentError(f"{experiment_dir}: already holds a fitted response model; pass --overwrite to replace it")
    try:
        config = FitConfig(draws=draws, chains=chains, warmup=warmup, target_accept=target_accept, seed=seed,
                           max_rhat=max_rhat, min_ess_per_chain=min_ess, model=model, max_lag=max_lag)
    except ValidationError as error:
        first = error.errors()[0]
        raise ConfigError(f"--{str(first['loc'][0]).replace('_', '-')} {first['input']}: {first['msg'].lower()}") from None
    total = chains * (warmup + draws)
    try:
        with progress_bar(f"sampling {chains} chains", total, quiet=quiet) as bar:
            fit_experiment(history, experiment_dir, config, progress=bar.advance)
    except FitDiagnosticsError:
        if json_path is not None:
            save_json(json_path, _fit_summary(experiment_dir))
        raise
    summary = _fit_summary(experiment_dir)
    if not quiet:
        _print_fit(summary)
    save_json(json_path, summary)


def _fit_summary(directory: Path) -> dict:
    """The figures of a fit for --json and the console: per-channel estimates, diagnostics, PPC."""
    import numpy as np

    from nextbest.budget.experiment import BudgetExperiment
    from nextbest.simulators.flight import return_on_spend

    experiment = BudgetExperiment.open(directory, require_diagnostics=False)
    p = experiment.parameters
    roi = return_on_spend(p.thin(1000), experiment.history)
    channels = {}
    for c, name in enumerate(experiment.channels):
        shape = ({"decay": p.decay[:, c], "slope": p.slope[:, c], "half_saturation": np.exp(p.saturation[:, c] + p.spend_center[c])}
                 if p.kind == "hill" else {"beta": p.beta[:, c]})
        values = shape | {"roi": roi[:, c], "holiday_lift": p.holiday[:, c], "ctr": p.ctr[:, c], "trend": p.trend[:, c]}
        channels[name] = {key: {"mean": float(v.mean()), "interval_90": [float(q) for q in _quantiles(v)]}
                          for key, v in values.items()}
    stored = experiment.summary  # budget.json, as read by open
    return {"experiment_dir": str(directory), "model": p.kind, "channels": channels, "diagnostics": stored["diagnostics"],
            "predictive_check": stored["predictive_check"], "seconds": stored["fit"]["seconds"]}


def _quantiles(values):
    import numpy as np

    return np.quantile(values, [0.05, 0.95])


def _print_fit(summary: dict) -> None:
    d = summary["diagnostics"]
    hill = summary["model"] == "hill"
    table = Table(title=f"{summary['model']} response model fitted in {summary['seconds']:.1f} s: mean [90% interval]")
    columns = {"decay": "decay θ", "half_saturation": "half-saturation κ", "roi": "clicks per unit spend"} if hill else \
        {"beta": "elasticity β", "roi": "clicks per unit spend"}
    columns |= {"holiday_lift": "holiday lift γ", "ctr": "CTR"}
    for name in ("channel", *columns.values(), "clicks in 90% PPC interval"):
        table.add_column(name, justify="right")
    for channel, values in summary["channels"].items():
        cells = [f"{values[k]['mean']:.3g} [{values[k]['interval_90'][0]:.3g}, {values[k]['interval_90'][1]:.3g}]"
                 for k in columns]
        table.add_row(channel, *cells, f"{summary['predictive_check']['clicks'][channel]['coverage_90']:.0%}")
    console.print(table)
    console.print(f"diagnostics: max R-hat {d['max_rhat']:.3f}, min ESS {min(d['min_ess_bulk'], d['min_ess_tail']):.0f} "
                  f"(bulk/tail), {d['divergences']} divergences, {d['chains']} chains × {d['draws']} draws: "
                  + ("[green]passed[/green]" if d["passed"] else "[red]failed[/red]"))


@budget.command()
def allocate(
    directory: Path = typer.Argument(..., help=DIR_HELP),
    budget_: float = typer.Option(..., "--budget", help="The day's budget to split, in the history's currency."),
    holiday: bool = typer.Option(False, "--holiday", help="The day is a holiday."),
    date: str | None = typer.Option(None, "--date", help="The day, YYYY-MM-DD (weekday and season); default: an average day."),
    minimum: str | None = typer.Option(None, "--min", help="Per-channel minimum spend, e.g. search=100,display=50."),
    maximum: str | None = typer.Option(None, "--max", help="Per-channel maximum spend, e.g. social=400."),
    truth: Path | None = typer.Option(None, "--truth", help=TRUTH_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Recommend the split of a budget, with expected clicks and cost per click (90% intervals), next to the baselines."""
    from nextbest.budget.allocate import recommend
    from nextbest.budget.experiment import BudgetExperiment
    from nextbest.simulators.optimize import Bounds

    experiment = BudgetExperiment.open(directory)
    bounds = Bounds.create(experiment.channels, _limits(minimum, "--min"), _limits(maximum, "--max"))
    result = recommend(experiment, budget_, holiday=holiday, date=_date(date), bounds=bounds, truth=_truth(truth))
    if not quiet:
        _print_allocation(result, experiment.channels)
    for note in result["notes"]:
        error_console.print(f"[yellow]note: {note}[/yellow]", soft_wrap=True)
    save_json(json_path, result)


def _limits(text: str | None, flag: str) -> dict[str, float] | None:
    if not text:
        return None
    limits = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"{flag} {text!r}: expected channel=amount pairs separated by commas, e.g. search=100,display=50")
    return limits


def _date(text: str | None) -> str | None:
    from nextbest.data.channels import parse_date

    return None if text is None else parse_date(text, "--date")


def _truth(path: Path | None):
    import json

    from nextbest.simulators.response import ResponseParameters

    if path is None:
        return None
    try:
        return ResponseParameters.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a truth file from `nextbest budget synthesize --truth` ({type(error).__name__}: {error})") from None


def _print_allocation(result: dict, channels: list[str]) -> None:
    day = ("holiday" if result["holiday"] else "regular day") + (f", {result['date']}" if result["date"] else "")
    table = Table(title=f"budget {result['budget']:g} on a {day}: the optimizer's split and the baselines")
    table.add_column("allocation")
    _print_baselines(table, result, channels, {"cost per click": lambda row: f"{row['cost_per_click']:.4f}"},
                     lambda row: {c: row["allocation"][c] for c in channels})


@budget.command()
def plan(
    directory: Path = typer.Argument(..., help=DIR_HELP),
    budget_: float = typer.Option(..., "--budget", help="The campaign's total budget, in the history's currency."),
    days: int = typer.Option(..., "--days", help="Days of the flight."),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD (default: the day after the history)."),
    minimum: str | None = typer.Option(None, "--min", help="Per-channel minimum spend per day, e.g. search=100,display=50."),
    maximum: str | None = typer.Option(None, "--max", help="Per-channel maximum spend per day, e.g. social=400."),
    metric: str = typer.Option("clicks", "--metric", help="What to maximize: clicks or conversions."),
    risk: float | None = typer.Option(None, "--risk", help="Risk-averse: maximize the mean of this share of the worst posterior draws (e.g. 0.1)."),
    ppo_steps: int = typer.Option(0, "--ppo-steps", help="Also train a PPO pacer in nextbest/BudgetPacing-v0 for this many days and list it."),
    truth: Path | None = typer.Option(None, "--truth", help=TRUTH_HELP),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Plan a campaign flight: the budget split across days and channels, counting the carryover after it."""
    from nextbest.budget.experiment import BudgetExperiment
    from nextbest.budget.plan import plan_campaign
    from nextbest.simulators.optimize import Bounds

    if metric not in ("clicks", "conversions"):
        raise ConfigError(f"--metric {metric!r}: expected clicks or conversions")
    if ppo_steps < 0:
        raise ConfigError(f"--ppo-steps {ppo_steps}: expected 0 (no PPO pacer) or a positive number of simulated days")
    experiment = BudgetExperiment.open(directory)
    bounds = Bounds.create(experiment.channels, _limits(minimum, "--min"), _limits(maximum, "--max"))
    result = plan_campaign(experiment, budget_, days, start=start, bounds=bounds, truth=_truth(truth), metric=metric,
                           risk=risk, ppo_steps=ppo_steps, seed=seed)
    if not quiet:
        _print_plan(result, experiment.channels)
    for note in result["notes"]:
        error_console.print(f"[yellow]note: {note}[/yellow]", soft_wrap=True)
    save_json(json_path, result)


def _print_plan(result: dict, channels: list[str]) -> None:
    table = Table(title=f"{result['metric']} over {result['days']} days from {result['start']} and {result['carryover_days']} "
                        f"carryover days: budget {result['budget']:g}")
    table.add_column("plan")
    _print_baselines(table, result, channels, {}, _plan_totals, suffix=" total")


def _plan_totals(row: dict) -> dict[str, float]:
    """Each channel's spend over a plan's days."""
    totals: dict[str, float] = {}
    for entry in row["plan"]:
        totals[entry["channel"]] = totals.get(entry["channel"], 0.0) + entry["spend"]
    return totals


def _print_baselines(table: Table, result: dict, channels: list[str], extra: dict, spend, suffix: str = "") -> None:
    """One row per baseline: each channel's spend (`spend(row)` → {channel: amount}), the expected clicks with
    their interval, the `extra` columns ({title: row → cell}) and the true clicks when the result has them."""
    truth = "true_clicks" in result
    for name in (*(f"{c}{suffix}" for c in channels), "expected clicks [90%]", *extra, *(["true clicks"] if truth else [])):
        table.add_column(name, justify="right")
    for name, row in result["baselines"].items():
        low, high = row["clicks_interval"]
        amounts = spend(row)
        cells = [f"{amounts.get(c, 0.0):.2f}" for c in channels] + [f"{row['expected_clicks']:.0f} [{low:.0f}, {high:.0f}]"]
        cells += [cell(row) for cell in extra.values()] + ([f"{row['true_clicks']:.0f}"] if truth else [])
        table.add_row(name, *cells)
    console.print(table)


@budget.command()
def train(
    directory: Path = typer.Argument(..., help=DIR_HELP),
    steps: int = typer.Option(30_000, "--steps", help="Simulated days to learn from."),
    reward: str = typer.Option("neg_log_cpc", "--reward", help="neg_log_cpc (−log cost per click), clicks or conversions."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    hyperparameters: str | None = typer.Option(None, "--hyperparameters", help="PPO settings as JSON, e.g. '{\"learning_rate\": 1e-3}'."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Train the PPO allocator in the fitted model (one posterior draw per episode); TensorBoard in DIR/tensorboard."""
    from nextbest.budget.train import train_allocator

    with progress_bar("training the PPO allocator", steps, quiet=quiet) as bar:
        result = train_allocator(directory, steps=steps, reward=reward, seed=seed, hyperparameters=hyperparameters,
                                 on_update=lambda row: bar.update(total=max(steps, row["steps"]), completed=row["steps"]))
    if not quiet:
        console.print(f"trained {result['steps']} days in {result['seconds']:.0f} s: the allocator's expected clicks are "
                      f"{result['ratio_to_optimizer']:.1%} of the optimizer's on {result['evaluation_days']} held-out days; "
                      f"saved in {directory / 'allocator'}")
    save_json(json_path, result)


@budget.command()
def report(
    directory: Path = typer.Argument(..., help=DIR_HELP),
    budget_: float | None = typer.Option(None, "--budget", help="Budget of the allocation comparison (default: the history's mean)."),
    truth: Path | None = typer.Option(None, "--truth", help=TRUTH_HELP),
    output: Path | None = typer.Option(None, "--output", help="Directory for the figures (default: DIR/figures)."),
) -> None:
    """Figures: response curves with credible bands and the history, posterior-predictive check, allocations, learning curve."""
    from nextbest.budget.report import write_report

    written = write_report(directory, output or directory / "figures", budget=budget_, truth=_truth(truth))
    for path in written:
        console.print(f"wrote {path}")
    if not any(p.name == "learning_curve.png" for p in written):
        error_console.print("[dim]no learning curve: train the allocator with `nextbest budget train` first[/dim]")
