"""`nextbest synth fit|sample|report|data|models`: synthetic customers from a fitted generative model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, progress_bar, save_json, split_names
from nextbest.data.tables import read_table, write_table
from nextbest.errors import ExperimentError

synth = typer.Typer(help="Synthetic customers: fit a generative model of a table, sample from it, score the copy.",
                    no_args_is_help=True)
app.add_typer(synth, name="synth")

MODELS_HELP = "vae (variational autoencoder), gan (conditional GAN) or made (autoregressive, exact likelihood)."
HYPERPARAMETERS_HELP = "Model settings as a JSON object or a path to a JSON file, e.g. '{\"batch_size\": 1000}'."
CATEGORICAL_HELP = "Columns to treat as categories although they hold numbers, comma-separated."


@synth.command()
def fit(
    data: Path = typer.Argument(..., help="Customer table to learn (CSV or Parquet)."),
    model: str = typer.Option(..., "--model", help=MODELS_HELP),
    experiment_dir: Path = typer.Option(..., "--experiment-dir", help="Directory to save the fitted generator in."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the table (default: the model's)."),
    hyperparameters: str | None = typer.Option(None, "--hyperparameters", help=HYPERPARAMETERS_HELP),
    categorical_columns: str | None = typer.Option(None, "--categorical-columns", help=CATEGORICAL_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a generator already fitted in the directory."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Learn the joint distribution of a customer table and save the generator."""
    from nextbest.config import parse_overrides
    from nextbest.figures import save
    from nextbest.generative import generator_class
    from nextbest.generative.plots import training_curve

    cls = generator_class(model)
    if (experiment_dir / "checkpoints" / "latest").is_file() and not overwrite:
        raise ExperimentError(f"{experiment_dir}: already holds a fitted generator; pass --overwrite to replace it")
    flags = {"epochs": epochs, "seed": seed, "categorical_columns": split_names(categorical_columns)}
    generator = cls(parse_overrides(hyperparameters) | {k: v for k, v in flags.items() if v is not None})
    table = read_table(data)
    with progress_bar(f"fitting {model}", generator.epochs_for(len(table)), quiet=quiet) as bar:
        generator.fit(table, source=str(data), on_epoch=lambda epoch, metrics: bar.advance())
        bar.update(total=len(generator.history), completed=len(generator.history))  # early stopping ends sooner
    generator.save(experiment_dir)
    if generator.history:
        save(training_curve(generator.history), experiment_dir / "training_curve.png")
    summary = generator.summary
    if not quiet:
        table_ = Table(title=f"{model} fitted on {data}", show_header=False)
        for key, value in summary.items():
            table_.add_row(key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value))
        console.print(table_)
        if "validation_log_likelihood" in summary:
            console.print(f"held-out log-likelihood {summary['validation_log_likelihood']:.3f} nats per row "
                          f"(independent columns: {summary['validation_marginals_log_likelihood']:.3f})")
        console.print(f"saved to {experiment_dir}")
    save_json(json_path, summary)


@synth.command()
def sample(
    directory: Path = typer.Argument(..., help="Directory of a fitted generator (from `nextbest synth fit`)."),
    rows: int = typer.Option(..., "--rows", help="Number of synthetic rows."),
    output: Path = typer.Option(..., "--output", help="Table to write (CSV or Parquet)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    conditions: str | None = typer.Option(None, "--conditions", help="Only rows with these categories, e.g. 'segment=gold,region=north'."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Write synthetic rows that look like the table the generator learned."""
    from nextbest.data.tables import table_format
    from nextbest.generative import load_generator

    table_format(output)  # a bad suffix fails before any work
    generator = load_generator(directory)
    with progress_bar("sampling", rows, quiet=quiet) as bar:
        table = generator.sample(rows, seed=seed, conditions=conditions, on_rows=lambda done: bar.update(completed=done))
    write_table(table, output)
    if not quiet:
        console.print(f"wrote {len(table)} synthetic rows to {output}")


@synth.command()
def report(
    real: Path = typer.Argument(..., help="The real table (CSV or Parquet)."),
    synthetic: Path = typer.Argument(..., help="The synthetic table, with the same columns."),
    holdout: Path | None = typer.Option(None, "--holdout", help="Real rows the generator never saw (default: 30% of REAL)."),
    target: str | None = typer.Option(None, "--target", help="Column to predict for ML efficacy (default: the last)."),
    categorical_columns: str | None = typer.Option(None, "--categorical-columns", help=CATEGORICAL_HELP),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    html_path: Path | None = typer.Option(None, "--html", help="Also write a page with the figures to this path."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Score a synthetic table: column shapes, pair trends, detection, ML efficacy, privacy."""
    from nextbest.generative.quality import STEPS, quality_report

    tables = [read_table(real), read_table(synthetic), read_table(holdout) if holdout else None]
    with progress_bar("scoring", len(STEPS), quiet=quiet) as bar:
        result = quality_report(
            tables[0], tables[1], holdout=tables[2], target=target, categorical_columns=split_names(categorical_columns),
            seed=seed, sources=(str(real), str(synthetic), str(holdout)), on_step=lambda step: bar.advance(),
        )
    if not quiet:
        _print_report(result)
    save_json(json_path, result.to_dict())
    if html_path is not None:
        from nextbest.generative.html import write_html

        write_html(result, html_path, title=f"{synthetic} against {real}")
        console.print(f"report: {html_path}")


def _print_report(result) -> None:
    table = Table(title="synthetic data quality (every score in [0, 1], 1 best)")
    for name in ("score", "value", "what"):
        table.add_column(name, justify="left" if name != "value" else "right")
    d, e, p = result.detection, result.ml_efficacy, result.privacy
    what = {
        "quality": "mean of column shapes and pair trends",
        "column_shapes": "1 − KS (numeric) or 1 − TV (categorical), mean over columns",
        "pair_trends": "1 − |Δ correlation|/2 or 1 − contingency TV, mean over pairs",
        "detection": f"real-vs-synthetic classifier AUC {d['auc']:.3f} (0.5 is best)",
        "ml_efficacy": f"{e['metric']} of '{e['target']}': {e['train_synthetic']:.3f} trained on synthetic, "
                       f"{e['train_real']:.3f} on real",
        "privacy": f"median distance to closest real row {p['dcr_synthetic_median']:.3f} "
                   f"(real holdout: {p['dcr_holdout_median']:.3f})",
    }
    for name, value in result.scores.items():
        table.add_row(name.replace("_", " "), f"{value:.3f}", what[name])
    console.print(table)


@synth.command()
def data(
    name: str = typer.Argument(..., help="crm, crm-wide (generated) or cdnow (real, shipped)."),
    output: Path = typer.Option(..., "--output", help="Table to write (CSV or Parquet)."),
    rows: int | None = typer.Option(None, "--rows", help="Rows (generated tables: 5000 by default; cdnow: a subsample)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
) -> None:
    """Write a built-in customer table for trying the generators (nothing is downloaded)."""
    from nextbest.data.tables import table_format
    from nextbest.generative.datasets import load_dataset

    table_format(output)
    table = load_dataset(name, rows, seed)
    write_table(table, output)
    console.print(f"wrote {len(table)} rows × {table.shape[1]} columns of '{name}' to {output}")


@synth.command()
def models() -> None:
    """List the generative models and the built-in tables."""
    from nextbest.generative import GENERATORS
    from nextbest.generative.datasets import DATASETS

    table = Table(title="generative models (nextbest synth fit --model NAME)")
    table.add_column("model")
    table.add_column("what")
    for name, cls in GENERATORS.items():
        table.add_row(name, cls.summary_text)
    console.print(table)
    tables = Table(title="built-in tables (nextbest synth data NAME)")
    tables.add_column("table")
    tables.add_column("what")
    for name, (summary, _) in DATASETS.items():
        tables.add_row(name, summary)
    console.print(tables)
