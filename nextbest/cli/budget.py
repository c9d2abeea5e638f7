"""`nextbest budget synthesize|fit|allocate|train|report`: split a daily budget across marketing channels."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, error_console, progress_bar, save_json
from nextbest.errors import ConfigError, ExperimentError

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
) -> None:
    """Draw a realistic channel history from a known response model (and keep the truth)."""
    from nextbest.data.tables import table_format
    from nextbest.io import write_json
    from nextbest.simulators.synthesize import synthesize as draw

    table_format(output)
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
                           max_rhat=max_rhat, min_ess_per_chain=min_ess)
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
    from nextbest.budget.experiment import BudgetExperiment

    experiment = BudgetExperiment.open(directory, require_diagnostics=False)
    p = experiment.parameters
    channels = {}
    for c, name in enumerate(experiment.channels):
        values = {"beta": p.beta[:, c], "holiday_lift": p.holiday[:, c], "ctr": p.ctr[:, c], "trend": p.trend[:, c]}
        channels[name] = {key: {"mean": float(v.mean()), "interval_90": [float(q) for q in _quantiles(v)]}
                          for key, v in values.items()}
    stored = experiment.summary  # budget.json, as read by open
    return {"experiment_dir": str(directory), "channels": channels, "diagnostics": stored["diagnostics"],
            "predictive_check": stored["predictive_check"], "seconds": stored["fit"]["seconds"]}


def _quantiles(values):
    import numpy as np

    return np.quantile(values, [0.05, 0.95])


def _print_fit(summary: dict) -> None:
    d = summary["diagnostics"]
    table = Table(title=f"response model fitted in {summary['seconds']:.1f} s: mean [90% interval]")
    for name in ("channel", "elasticity β", "holiday lift γ", "CTR", "clicks in 90% PPC interval"):
        table.add_column(name, justify="right")
    for channel, values in summary["channels"].items():
        cells = [f"{values[k]['mean']:.3g} [{values[k]['interval_90'][0]:.3g}, {values[k]['interval_90'][1]:.3g}]"
                 for k in ("beta", "holiday_lift", "ctr")]
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
    for channel in channels:
        table.add_column(channel, justify="right")
    truth = "true_clicks" in result
    for name in ("expected clicks [90%]", "cost per click", *(["true clicks"] if truth else [])):
        table.add_column(name, justify="right")
    for name, row in result["baselines"].items():
        low, high = row["clicks_interval"]
        cells = [f"{row['allocation'][c]:.2f}" for c in channels]
        cells += [f"{row['expected_clicks']:.0f} [{low:.0f}, {high:.0f}]", f"{row['cost_per_click']:.4f}"]
        if truth:
            cells.append(f"{row['true_clicks']:.0f}")
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
