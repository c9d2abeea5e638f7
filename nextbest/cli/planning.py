"""`nextbest plan ENV`: exact dynamic programming on a Gymnasium toy-text world, an MDP spec file
or an MDP estimated from logged experience."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, app, console, error_console, progress_bar, save_json
from nextbest.errors import ConfigError
from nextbest.planning.solvers import METHODS

PROGRESS_ABOVE = 2_000_000  # non-zero transitions: below this a solve takes well under a second
LIST_UP_TO = 40  # states listed one per line when the MDP is not a grid


@app.command("plan")
def plan_command(
    env: str = typer.Argument(..., help="Gymnasium id (FrozenLake-v1, FrozenLake8x8-v1, Taxi-v3, CliffWalking-v1, "
                              "nextbest/GridMap-v0, any toy-text model), an MDP spec (.yaml, .yml, .json) or an "
                              "experience table (.csv, .parquet) with state, action, reward, next_state, done."),
    method: str = typer.Option("value-iteration", "--method", help=f"One of: {', '.join(METHODS)}."),
    gamma: float | None = typer.Option(None, "--gamma", help="Discount in (0, 1]; default: the spec's gamma, else 0.99."),
    tolerance: float = typer.Option(1e-8, "--tolerance", help="Iterative methods stop once max |V − V*| ≤ this is guaranteed."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy to evaluate (policy-evaluation) or start from "
                                          "(policy-iteration): the JSON of `plan --json`, or a table with state, action[, probability]."),
    max_iterations: int | None = typer.Option(None, "--max-iterations", help="Stop after this many iterations (default: the method's)."),
    prior: float | None = typer.Option(None, "--prior", help="Experience tables: pseudo-counts of the state's pooled behaviour "
                                          "added to each state-action pair (default 1)."),
    env_kwargs: str | None = typer.Option(None, "--env-kwargs", help="Gymnasium options as JSON, e.g. '{\"is_slippery\": false}'."),
    save_model: Path | None = typer.Option(None, "--save-model", help="Write the MDP (e.g. the one estimated from experience) as a YAML or JSON spec."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw the values and the greedy policy to this image (PNG, SVG, PDF)."),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Solve a finite MDP exactly: optimal values, greedy policy and Q-values (or evaluate a given policy)."""
    from nextbest.planning.solvers import plan
    from nextbest.planning.sources import load_mdp, read_policy

    source = load_mdp(env, gamma=gamma, prior=prior, env_kwargs=_json_object(env_kwargs))
    mdp = source.mdp
    if save_model is not None:
        from nextbest.planning.spec import save_spec

        console.print(f"wrote the model to {save_spec(mdp, save_model)}")
    chosen = read_policy(policy, mdp) if policy is not None else None
    large = mdp.transitions.nnz > PROGRESS_ABOVE
    with progress_bar(method, None, quiet=quiet) if large else nullcontext() as bar:
        result = plan(mdp, method, policy=chosen, tolerance=tolerance, max_iterations=max_iterations,
                      callback=(lambda k, change: bar.advance()) if bar is not None else None)
    if not quiet:
        _print(result, mdp, source.notes)
    if plot is not None:
        from nextbest.planning import plots

        console.print(f"plot: {plots.save(plots.plot_result(result, mdp), plot)}")
    save_json(json_path, {"env": env, "n_states": mdp.n_states, "n_actions": mdp.n_actions, **result.to_dict(mdp), **source.details})


def _print(result: Any, mdp: Any, notes: list[str]) -> None:
    console.print(mdp.describe())
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    bound = f", error ≤ {result.error_bound:.1e}" if result.error_bound is not None else ""
    console.print(f"{result.method}: {result.iterations} iterations, residual {result.residual:.1e}{bound}, "
                  f"{result.seconds:.3f} s", soft_wrap=True)
    if not result.converged:
        error_console.print(f"[yellow]warning: {result.method} stopped after {result.iterations} iterations before reaching "
                            "the tolerance; raise --max-iterations or loosen --tolerance[/yellow]")
    if mdp.layout is not None:
        _print_grid(result, mdp)
    elif mdp.n_states <= LIST_UP_TO:
        from nextbest.planning.plots import action_symbol

        table = Table("state", "value", "action")
        for s in range(mdp.n_states):
            action = "(terminal)" if mdp.terminal[s] else action_symbol(mdp.actions[result.policy[s]])
            table.add_row(str(mdp.states[s]), f"{result.values[s]:.4f}", action)
        console.print(table)
    else:
        console.print(f"values from {result.values.min():.4g} to {result.values.max():.4g} over {mdp.n_states} states; "
                      "--json PATH writes them all")


def _print_grid(result: Any, mdp: Any) -> None:
    """Two grids: values, then the greedy action as arrows (marks for holes, goals, walls)."""
    from nextbest.planning.plots import action_symbol

    layout = mdp.layout
    scale = float(np.abs(result.values).max(initial=0.0))
    decimals = 3 if scale < 10 else 1 if scale < 1000 else 0
    values, arrows = [], []
    for s in range(mdp.n_states):
        wall = s in layout.walls
        values.append("■" if wall else f"{result.values[s]:.{decimals}f}")
        arrows.append("■" if wall else layout.marks.get(s) or action_symbol(mdp.actions[result.policy[s]]))
    for title, cells in (("values", values), ("policy", arrows)):
        width = max(map(len, cells))
        console.print(f"[bold]{title}[/bold]")
        for row in range(layout.rows):
            line = " ".join(c.rjust(width) for c in cells[row * layout.cols:(row + 1) * layout.cols])
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--env-kwargs: not valid JSON ({error.msg} at position {error.pos})") from None
    if not isinstance(value, dict):
        raise ConfigError("--env-kwargs: expected a JSON object, e.g. '{\"is_slippery\": false}'")
    return value

