"""Commands of the personalization loop: init, predict, train, simulate, show, and the registries
(evaluate lives in nextbest/cli/evaluation.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.agents import AGENTS, DEFAULT_AGENT
from nextbest.agents.settings import build_hyperparameters, default_hyperparameters
from nextbest.cli.app import (
    JSON_HELP,
    QUIET_HELP,
    RAY_HELP,
    SEED_HELP,
    app,
    console,
    open_experiment,
    progress_bar,
    save_json,
    split_names,
)
from nextbest.data.tables import read_table, write_table
from nextbest.envs import SCENARIO_FAMILIES, SCENARIOS, scenario_choices
from nextbest.errors import ConfigError
from nextbest.training.experiment import Experiment, describe
from nextbest.training.setup import experiment_schema

HYPERPARAMETERS_HELP = "Overrides as a JSON object or a path to a JSON file, e.g. '{\"epsilon\": 0.05}'."


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Experiment directory to create."),
    action_space: str = typer.Option(..., "--action-space", help="Choices per choice set: 16, or 4,4 for two at once."),
    columns: str = typer.Option(..., "--columns", help="Context columns in order, comma-separated."),
    categorical_columns: str = typer.Option("", "--categorical-columns", help="Which of the columns are categorical."),
    categorical_dimensions: str | None = typer.Option(
        None, "--categorical-dimensions", help="Categories per categorical column (values 0 … n−1), e.g. 3,4."
    ),
    schema_from: Path | None = typer.Option(None, "--schema-from", help="Context table to read vocabularies and numeric statistics from."),
    agent: str = typer.Option(DEFAULT_AGENT, "--agent", help=f"One of: {', '.join(AGENTS)}."),
    hyperparameters: str | None = typer.Option(None, "--hyperparameters", help=HYPERPARAMETERS_HELP),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
) -> None:
    """Create an experiment directory from a schema and an action space."""
    from nextbest.data.actions import ActionSpace

    space = ActionSpace.parse(action_space)
    hp = build_hyperparameters(
        agent, hyperparameters, action_space=list(space.sizes), columns=split_names(columns),
        categorical_columns=split_names(categorical_columns) or [], seed=seed,
    )
    try:
        dimensions = [int(d) for d in split_names(categorical_dimensions)] if categorical_dimensions else None
    except ValueError:
        raise ConfigError(f"--categorical-dimensions {categorical_dimensions!r}: expected whole numbers, e.g. 3,4") from None
    schema = experiment_schema(hp, categorical_dimensions=dimensions, schema_from=schema_from)
    Experiment.create(directory, hp, schema)
    console.print(f"created [bold]{directory}[/bold]: agent {hp.agent_name}, action space {list(space.sizes)}, "
                  f"{len(schema.columns)} columns ({len(schema.categorical_columns)} categorical)")


@app.command()
def predict(
    directory: Path = typer.Argument(..., help="Experiment directory."),
    contexts: Path = typer.Option(..., "--contexts", help="Context table (CSV or Parquet)."),
    output: Path = typer.Option(..., "--output", help="Prediction table to write (CSV or Parquet)."),
    greedy: bool = typer.Option(False, "--greedy", help="Take the best action (no exploration), for evaluation."),
    seed: int | None = typer.Option(None, "--seed", help="Base prediction seed: row i gets seed + i (random if omitted)."),
    checkpoint: str | None = typer.Option(None, "--from-checkpoint", help="Checkpoint to use instead of the latest."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " CONTEXTS may then be a folder of Parquet files; "
                                   "OUTPUT is a folder of Parquet files (part-<first row>.parquet)."),
    workers: int | None = typer.Option(None, "--workers", help="With --ray: scoring actors (default: the cluster's CPUs)."),
    batch_size: int = typer.Option(65_536, "--batch-size", help="With --ray: rows per scored batch."),
) -> None:
    """Choose an action for every context row: the prediction table, one row per input row."""
    if ray is not None:
        from nextbest.scale.cluster import ray_session
        from nextbest.scale.scoring import score_parquet

        with ray_session(ray), progress_bar(f"scoring {contexts} on Ray", None):
            result = score_parquet(directory, contexts, output, seed=seed, greedy=greedy, checkpoint=checkpoint,
                                   workers=workers, batch_size=batch_size)
        console.print(f"wrote {result.rows} predictions to {output} ({result.files} Parquet files, {result.workers} workers, "
                      f"{result.seconds:.1f} s)")
        return
    if workers is not None:
        raise ConfigError("--workers applies to --ray only")
    experiment = open_experiment(directory, checkpoint)
    table = experiment.predict(read_table(contexts), seed=seed, greedy=greedy, source=str(contexts))
    write_table(table, output)
    console.print(f"wrote {len(table)} predictions to {output}")


@app.command()
def train(
    directory: Path = typer.Argument(..., help="Experiment directory."),
    experiences: Path = typer.Option(..., "--experiences", help="Prediction table plus a 'reaction' column."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates", help="Train rows that were trained before."),
    checkpoint: str | None = typer.Option(None, "--from-checkpoint", help="Continue from this checkpoint instead of the latest."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Learn from an experience table and write a new checkpoint."""
    experiment = open_experiment(directory, checkpoint)
    table = read_table(experiences)
    with progress_bar(f"training {experiment.hyperparameters.agent_name} on {len(table):,} rows", None, quiet=quiet):
        metrics = experiment.train(table, source=str(experiences), allow_duplicates=allow_duplicates)
    experiment.close()
    if not quiet:
        console.print(
            f"trained on {experiences}: update {experiment.progress.updates}, {experiment.progress.examples} examples in all, "
            f"mean reward {metrics['reward/mean']:.4g}; checkpoint {experiment.checkpoint.name}"
        )
    save_json(json_path, {"updates": experiment.progress.updates, "examples": experiment.progress.examples, **metrics})


@app.command()
def simulate(
    scenario: str = typer.Option("optimus-poc", "--scenario", help=f"One of: {', '.join(scenario_choices())}."),
    agent: str = typer.Option(DEFAULT_AGENT, "--agent", help=f"One of: {', '.join(AGENTS)}."),
    examples: int = typer.Option(3000, "--examples", help="Decisions to simulate in all."),
    batch_size: int = typer.Option(500, "--batch-size", help="Decisions per predict → train round."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    hyperparameters: str | None = typer.Option(None, "--hyperparameters", help=HYPERPARAMETERS_HELP),
    experiment_dir: Path | None = typer.Option(None, "--experiment-dir", help="Keep checkpoints, experiences, TensorBoard logs and the learning curve here."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
    contexts_from: Path | None = typer.Option(None, "--contexts-from", help="Draw the customers from the generator fitted in this directory (nextbest synth fit) instead of the scenario's."),
    server: str | None = typer.Option(None, "--server", help="Play the customers against this running `nextbest serve` (http://host:port) instead of in-process."),
    experiment: str | None = typer.Option(None, "--experiment", help="With --server: the served experiment to play against (default: the only one served)."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="NEXTBEST_API_KEY", help="With --server: the key to send."),
    seeds: str | None = typer.Option(None, "--seeds", help="Run these seeds (0-9, or 1,4,7) instead of --seed; report the "
                                      "median and spread of the score per batch."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " With --seeds: the seeds run in parallel."),
    figure: Path | None = typer.Option(None, "--figure", help="With --seeds: draw the learning curves of all seeds here (PNG)."),
) -> None:
    """Run predict → react → train against a built-in scenario and score the agent against its oracle."""
    from nextbest.training.simulate import TARGET_SCORE
    from nextbest.training.simulate import simulate as run

    if seeds is not None or ray is not None or figure is not None:
        if seeds is None:
            raise ConfigError("--ray and --figure run several seeds at once: give --seeds, e.g. --seeds 0-9")
        if server is not None or contexts_from is not None or experiment_dir is not None:
            raise ConfigError("--seeds runs in memory against the scenario: drop --server, --contexts-from and --experiment-dir")
        _simulate_seeds(scenario, agent, seeds, examples=examples, batch_size=batch_size, hyperparameters=hyperparameters,
                        ray=ray, figure=figure, json_path=json_path, quiet=quiet)
        return
    if server is not None:
        if contexts_from is not None or experiment_dir is not None or hyperparameters is not None:
            raise ConfigError("--server plays against the served experiment's own settings: drop --contexts-from, "
                              "--experiment-dir and --hyperparameters")
        from nextbest.serving.play import play, served_experiment

        name = experiment or served_experiment(server)
        with progress_bar(f"{scenario} · {server}/{name}", examples, quiet=quiet) as bar:
            result = play(scenario, server, name, examples=examples, batch_size=batch_size, seed=seed, api_key=api_key,
                          on_batch=lambda b: bar.update(completed=b.examples))
        agent = f"{result.agent} (served)"
    contexts = None
    if contexts_from is not None:
        from nextbest.envs import make_scenario
        from nextbest.generative import contexts_sampler

        contexts = contexts_sampler(contexts_from, columns=make_scenario(scenario).columns)
    if server is None:
        with progress_bar(f"{scenario} · {agent}", examples, quiet=quiet) as bar:
            result = run(scenario, agent, examples=examples, batch_size=batch_size, seed=seed,
                         hyperparameters=hyperparameters, experiment_dir=experiment_dir, contexts=contexts,
                         on_batch=lambda b: bar.update(completed=b.examples))
    if not quiet:
        table = Table(title=f"{scenario} · {agent} · seed {seed}",
                      caption="expected reward per customer of the greedy policy on held-out customers; "
                              "normalized = (agent − random) / (oracle − random)")
        for name in ("batch", "examples", "mean reward", "oracle", "random", "agent", "normalized", "seconds"):
            table.add_column(name, justify="right")
        for b in result.batches:
            table.add_row(str(b.batch), str(b.examples), "" if b.mean_reward is None else f"{b.mean_reward:.4g}",
                          f"{b.oracle:.4g}", f"{b.random:.4g}", f"{b.agent:.4g}", f"{b.normalized_score:.3f}", f"{b.seconds:.1f}")
        console.print(table)
        reached = result.examples_to()
        console.print(f"normalized score {result.final_score:.3f} after {result.batches[-1].examples} examples; "
                      + (f"reached {TARGET_SCORE} after {reached}" if reached is not None else f"did not reach {TARGET_SCORE}"))
    if experiment_dir is not None:
        from nextbest.evaluation import plots
        from nextbest.evaluation.simulation import save_simulation

        save_simulation(result, experiment_dir)  # what `nextbest report` draws the oracle and regret from
        path = plots.save(plots.learning_curve(result), experiment_dir / "learning_curve.png")
        console.print(f"learning curve: {path}")
    save_json(json_path, result.to_dict())


def _simulate_seeds(scenario: str, agent: str, seeds: str, *, examples: int, batch_size: int, hyperparameters: str | None,
                    ray: str | None, figure: Path | None, json_path: Path | None, quiet: bool) -> None:
    """`simulate --seeds`: every seed (in parallel on Ray with --ray), then the median and spread per batch."""
    from nextbest.evaluation.seeds import parse_seeds, seeds_summary
    from nextbest.training.simulate import simulate as run

    chosen = parse_seeds(seeds)
    settings = dict(examples=examples, batch_size=batch_size, hyperparameters=hyperparameters)
    with progress_bar(f"{scenario} · {agent} · {len(chosen)} seeds" + (" on Ray" if ray else ""), len(chosen), quiet=quiet) as bar:
        if ray is not None:
            from nextbest.scale.cluster import ray_session
            from nextbest.scale.seeds import simulate_seeds

            with ray_session(ray):
                runs = simulate_seeds(scenario, agent, chosen, on_done=lambda _: bar.advance(), **settings)
        else:
            runs = []
            for seed in chosen:
                runs.append(run(scenario, agent, seed=seed, **settings))
                bar.advance()
    summary = seeds_summary(runs)
    if not quiet:
        table = Table(title=f"{scenario} · {agent} · seeds {seeds}",
                      caption="normalized score of the greedy policy on held-out customers, over the seeds")
        for name in ("batch", "examples", "median", "min", "25%", "75%", "max"):
            table.add_column(name, justify="right")
        for b in summary.batches:
            table.add_row(str(b.batch), str(b.examples), *(f"{v:.3f}" for v in (b.median, b.low, b.q25, b.q75, b.high)))
        console.print(table)
        last = summary.batches[-1]
        console.print(f"median normalized score {last.median:.3f} (min {last.low:.3f}, max {last.high:.3f}) after "
                      f"{last.examples} examples, {len(chosen)} seeds")
    if figure is not None:
        from nextbest.evaluation import plots

        console.print(f"learning curves: {plots.save(plots.seeds_learning_curves(summary), figure)}")
    save_json(json_path, summary.to_dict())


@app.command()
def show(
    directory: Path = typer.Argument(..., help="Experiment directory."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
) -> None:
    """Summarize an experiment: agent, schema, updates, last metrics, checkpoints (or an `nextbest rl` run)."""
    from nextbest.training.rl_run import rl_summary

    summary = rl_summary(directory) or describe(open_experiment(directory))
    table = Table(show_header=False, title=str(directory))
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{name} {number:.4g}" for name, number in value.items()) or "—"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "—"
        table.add_row(key.replace("_", " "), "—" if value is None else str(value))
    console.print(table)
    save_json(json_path, summary)


@app.command()
def scenarios() -> None:
    """List the built-in simulated scenarios."""
    table = Table("scenario", "action space", "summary")
    for name, scenario in SCENARIOS.items():
        table.add_row(name, str(list(scenario.sizes)), scenario.summary)
    for name, family in SCENARIO_FAMILIES.items():
        table.add_row(f"{name}:<seed>", "drawn", family.summary)
    console.print(table)


@app.command()
def agents() -> None:
    """List the registered agents."""
    table = Table("agent", "summary")
    for name, agent in AGENTS.items():
        table.add_row(name + (" (default)" if name == DEFAULT_AGENT else ""), agent.summary)
    console.print(table)


@app.command("hyperparameters")
def show_hyperparameters(agent: str = typer.Option(DEFAULT_AGENT, "--agent", help="Agent whose defaults to include.")) -> None:
    """Print the default hyperparameters (JSON) for an agent."""
    console.print_json(default_hyperparameters(agent).model_dump_json())
