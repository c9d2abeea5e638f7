"""Commands of evaluation: ope (off-policy estimates), evaluate (target actions, oracle), report, evaluation-table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, progress_bar, save_json, split_names
from nextbest.data.tables import read_table, write_table
from nextbest.envs import scenario_choices
from nextbest.errors import ConfigError
from nextbest.evaluation.estimators import ESTIMATORS
from nextbest.simulators.reward_models import REWARD_MODELS
from nextbest.training.experiment import Experiment

ESTIMATORS_HELP = f"Comma-separated, from: {', '.join(ESTIMATORS)} (default: all)."
CHECKPOINT_HELP = "Checkpoint to use instead of the latest."
REWARD_MODEL_HELP = f"Cross-fitted reward model of dm and the dr family: {', '.join(REWARD_MODELS)}."


@app.command()
def ope(
    logs: Path = typer.Argument(..., help="Logged decisions: context columns, action, reward, logging_probability."),
    target: Path | None = typer.Option(None, "--target", help="Target policy: one probability_<action> column per action (probability_0, probability_email, …), one row per logged row."),
    target_experiment: Path | None = typer.Option(None, "--target-experiment", help="Experiment whose agent is the target policy."),
    greedy: bool = typer.Option(False, "--greedy", help="With --target-experiment: evaluate the greedy policy (predict --greedy) instead of the exploring one."),
    checkpoint: str | None = typer.Option(None, "--from-checkpoint", help=CHECKPOINT_HELP),
    estimators: str | None = typer.Option(None, "--estimators", help=ESTIMATORS_HELP),
    reward_model: str = typer.Option("gbm", "--reward-model", help=REWARD_MODEL_HELP),
    folds: int = typer.Option(5, "--folds", help="Cross-fitting folds of the reward model."),
    clip: float | None = typer.Option(None, "--clip", help="Clip importance weights at this maximum (ips, snips, dr)."),
    threshold: float | None = typer.Option(None, "--switch-threshold", help="switch-dr's weight threshold τ (default: tuned)."),
    shrinkage: float | None = typer.Option(None, "--shrinkage", help="dr-os's shrinkage λ (default: tuned)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    interval: str = typer.Option("bootstrap", "--interval", help="'bootstrap' (percentile) or 'normal' (analytic standard error)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples."),
    columns: str | None = typer.Option(None, "--columns", help="Context columns of LOGS (default: all but action, reward and probabilities)."),
    categorical_columns: str | None = typer.Option(None, "--categorical-columns", help="Numeric-looking context columns to treat as categories."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Estimate what a target policy would earn per decision, from logs of another policy, with intervals."""
    from nextbest.evaluation.estimators import make_estimators
    from nextbest.evaluation.logs import read_logs, read_target_policy
    from nextbest.evaluation.ope import off_policy_evaluation, target_from_experiment

    if (target is None) == (target_experiment is None):
        raise ConfigError("give the target policy either as --target TABLE or as --target-experiment DIR (one of them)")
    if greedy and target_experiment is None:
        raise ConfigError("--greedy applies to --target-experiment only; a --target table gives the probabilities itself")
    if target_experiment is not None and (columns or categorical_columns):
        raise ConfigError("--columns and --categorical-columns apply to --target only; the experiment's schema names the context columns")
    names = split_names(estimators)
    chosen = make_estimators(names, clip=clip, threshold=threshold, shrinkage=shrinkage)  # unknown names fail early
    table = read_table(logs)
    if target is not None:
        target_table = read_table(target)
        policy = read_target_policy(target_table, table, source=str(target), logs_source=str(logs))
        probabilities = policy.probability
        data = read_logs(policy.logs, policy.space, source=str(logs), columns=split_names(columns),
                         categorical_columns=split_names(categorical_columns) or [])
        description = str(target)
    else:
        experiment = Experiment.open(target_experiment, checkpoint)
        data = read_logs(table, experiment.action_space, source=str(logs), schema=experiment.schema, reward=experiment.reward)
        probabilities = target_from_experiment(experiment, data, greedy=greedy, seed=seed)
        description = f"{target_experiment} ({'greedy' if greedy else 'exploring'} policy)"
    steps = folds if any(e.uses_reward_model for e in chosen) else 0
    with progress_bar("off-policy evaluation", steps + len(chosen), quiet=quiet) as bar:
        result = off_policy_evaluation(
            data, probabilities, estimators=names, reward_model=reward_model, folds=folds, clip=clip,
            threshold=threshold, shrinkage=shrinkage, confidence=confidence, interval=interval,  # type: ignore[arg-type]
            bootstrap_samples=bootstrap, seed=seed, target=description, on_step=lambda _: bar.advance(),
        )
    if not quiet:
        logging = result.logging_policy
        table_out = Table(title=f"target {description}: expected reward per decision, {len(data)} logged decisions")
        for name in ("estimator", "estimate", f"{confidence:.0%} interval", "vs logging", "effective sample size"):
            table_out.add_column(name, justify="right")
        for name, e in result.estimates.items():
            change = f"{e.estimate / logging.estimate - 1:+.1%}" if logging.estimate else ""
            table_out.add_row(name, f"{e.estimate:.4g}", f"{e.ci_low:.4g} … {e.ci_high:.4g}", change, f"{e.effective_sample_size:.0f}")
        console.print(table_out)
        console.print(f"logging policy: mean reward {logging.estimate:.4g} ({logging.ci_low:.4g} … {logging.ci_high:.4g})")
    save_json(json_path, result.to_dict())


@app.command()
def evaluate(
    directory: Path = typer.Argument(..., help="Experiment directory."),
    evaluation: Path = typer.Option(..., "--evaluation", help="Context columns plus 'target_action' (or target_action_0, …) and/or expected_reward_<action> columns."),
    checkpoint: str | None = typer.Option(None, "--from-checkpoint", help=CHECKPOINT_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
) -> None:
    """Accuracy of the greedy policy against known best actions, overall and per action; with the oracle's
    expected_reward_<action> columns also expected reward and regret."""
    from nextbest.evaluation.target import evaluate_targets

    experiment = Experiment.open(directory, checkpoint)
    result = evaluate_targets(experiment, read_table(evaluation), source=str(evaluation))
    oracle = "expected_reward" in result
    table = Table(title=f"accuracy {result['accuracy']:.3f} on {result['rows']} rows")
    names = ["action", "target rows", "accuracy", "chosen rows"] + (["expected reward", "oracle", "regret"] if oracle else [])
    for name in names:
        table.add_column(name, justify="right")
    for row in result["per_action"]:
        cells = [str(row["target_action"]), str(row["rows"]), _number(row["accuracy"], ".3f"), str(row["chosen"])]
        if oracle:
            cells += [_number(row.get(key), ".4g") for key in ("expected_reward", "oracle_reward", "regret")]
        table.add_row(*cells)
    console.print(table)
    if oracle:
        e = result["expected_reward"]
        console.print(f"expected reward per decision: policy {e['policy']:.4g} (exploring {e['exploring']:.4g}), oracle "
                      f"{e['oracle']:.4g}, random {e['random']:.4g}; regret {e['regret']:.4g}, normalized score "
                      f"{e['normalized_score']:.3f}")
    save_json(json_path, result)


@app.command()
def report(
    directory: Path = typer.Argument(..., help="Experiment directory."),
    format: str = typer.Option("html", "--format", help="'html' or 'markdown'."),
    ope: bool = typer.Option(True, "--ope/--no-ope", help="Include off-policy estimates on the experience store."),
    estimators: str | None = typer.Option(None, "--estimators", help=ESTIMATORS_HELP),
    reward_model: str = typer.Option("gbm", "--reward-model", help=REWARD_MODEL_HELP),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples of the off-policy intervals."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Write DIR/report/: learning curve, regret, actions over time and off-policy estimates, with PNG figures."""
    from nextbest.evaluation.report import write_report

    with progress_bar("report", 3 if ope else 1, quiet=quiet) as bar:
        result = write_report(directory, format=format, ope=ope, estimators=split_names(estimators),  # type: ignore[arg-type]
                              reward_model=reward_model, bootstrap_samples=bootstrap, seed=seed,
                              on_step=lambda _: bar.advance())
    console.print(f"wrote {result.path} with {len(result.figures)} figures")
    save_json(json_path, result.summary)


@app.command("evaluation-table")
def evaluation_table(
    scenario: str = typer.Option(..., "--scenario", help=f"One of: {', '.join(scenario_choices())}."),
    rows: int = typer.Option(2000, "--rows", help="Customers to draw."),
    output: Path = typer.Option(..., "--output", help="Evaluation table to write (CSV or Parquet)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
) -> None:
    """Write an evaluation table from a built-in scenario: contexts, target_action and expected_reward_<action>."""
    from nextbest.evaluation.target import oracle_table

    if rows < 1:
        raise ConfigError(f"--rows must be positive, got {rows}")
    write_table(oracle_table(scenario, rows, seed), output)
    console.print(f"wrote {rows} rows to {output}")


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)
