"""Reading logged decisions and per-action columns, with errors that name the file, column and row.

Logs (off-policy evaluation): context columns, `action` (or `action_0`, `action_1`, … for several
choice sets), `reward` and `logging_probability`. A nextbest experience table works as it is: its
`log_probability` stands in for `logging_probability`, and with an experiment its `reaction` for `reward`.

Per-action columns are named `<prefix><action>`: `probability_3`, or `probability_1_2` for the joint
action (1, 2) when there are several choice sets. The target policy uses the prefix `probability_`;
an evaluation table's oracle uses `expected_reward_`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.agents.base import PREDICTION_COLUMNS
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features, encode, numeric_column, numeric_matrix
from nextbest.data.schema import Schema, category_text, natural_key
from nextbest.errors import SchemaError
from nextbest.rewards import Reward, reaction_values

NOT_CONTEXT = {*PREDICTION_COLUMNS, "reaction", "reward", "logging_probability"}
TARGET_PREFIX = "probability_"


@dataclass
class Logs:
    """n logged decisions: contexts (the context columns), their features, the joint action taken (n,),
    the reward (n,), the logging policy's probability of that action (n,), and row seeds if logged."""

    contexts: pd.DataFrame
    features: Features
    action_space: ActionSpace
    action: np.ndarray
    reward: np.ndarray
    logging_probability: np.ndarray
    seeds: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.reward)


def read_logs(
    table: pd.DataFrame,
    action_space: ActionSpace,
    *,
    source: str = "logs",
    schema: Schema | None = None,
    columns: list[str] | None = None,
    categorical_columns: list[str] = (),
    reward: Reward | None = None,
) -> Logs:
    """Validate and encode logs. With `schema` (an experiment's) its columns are the context; otherwise
    `columns`, or every column that is not an action, reward or probability, with text columns and
    `categorical_columns` treated as categories."""
    table = table.reset_index(drop=True)
    joint = action_space.to_joint(action_space.read(table, source=source))
    rewards = _rewards(table, action_space, reward, source)
    probability = logging_probabilities(table, source)
    if schema is None:
        schema = infer_schema(table, action_space, columns, list(categorical_columns), source)
    if schema is None:  # context-free logs
        n = len(table)
        features = Features(np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32), ())
        contexts = table[[]]
    else:
        if not schema.numeric_stats_known and set(schema.columns) <= set(table.columns):
            numeric_matrix(table, schema.numeric_columns, source=source)  # an untrained agent standardizes by
            schema = schema.with_numeric_stats(table)  # the first table it sees, as Experiment.features does
        features = encode(table, schema, source=source)
        contexts = table[schema.columns]
    seeds = None
    if "prediction_seed" in table.columns:
        seeds = numeric_column(table["prediction_seed"], "prediction_seed", source=source).astype(np.int64)
    return Logs(contexts, features, action_space, joint, rewards, probability, seeds, source)


def infer_schema(
    table: pd.DataFrame, action_space: ActionSpace, columns: list[str] | None, categorical: list[str], source: str
) -> Schema | None:
    """The context schema of standalone logs (None when they have no context columns)."""
    if columns is None:
        taken = {*NOT_CONTEXT, *action_space.column_names()}
        columns = [str(c) for c in table.columns if c not in taken and not str(c).startswith(TARGET_PREFIX)]
    missing = [c for c in [*columns, *categorical] if c not in table.columns]
    if missing:
        raise SchemaError(f"{source}: no column(s) {missing}; the columns are {[str(c) for c in table.columns]}")
    if not columns:
        return None
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])]
    categorical = [c for c in columns if c in set(categorical) | set(text)]
    for name in categorical:
        distinct = table[name].nunique()
        if distinct > max(50, len(table) // 2):
            raise SchemaError(
                f"{source}: column '{name}' has {distinct} distinct values in {len(table)} rows, like an identifier or "
                f"a timestamp rather than a customer feature; choose the context columns with --columns"
            )
    return Schema.infer(table, columns, categorical, source=source)


def logging_probabilities(table: pd.DataFrame, source: str) -> np.ndarray:
    """(n,) `logging_probability`, or exp(`log_probability`) of a nextbest experience table; empty cells stay
    NaN so that the estimators' checks name them."""
    if "logging_probability" in table.columns:
        raw = table["logging_probability"]
        values = pd.to_numeric(raw, errors="coerce")
        text = values.isna() & raw.notna()
        if text.any():
            row = int(np.flatnonzero(text.to_numpy())[0])
            raise SchemaError(f"{source}: column 'logging_probability' has {raw.iloc[row]!r} in row {row + 1}; "
                              f"expected a probability between 0 and 1")
        return values.to_numpy(dtype=float, na_value=np.nan)
    if "log_probability" in table.columns:
        return np.exp(numeric_column(table["log_probability"], "log_probability", source=source))
    raise SchemaError(f"{source}: missing column 'logging_probability', the probability with which the logging "
                      f"policy chose each logged action (a nextbest experience table's 'log_probability' also works)")


def _rewards(table: pd.DataFrame, space: ActionSpace, reward: Reward | None, source: str) -> np.ndarray:
    if "reward" in table.columns:
        return numeric_column(table["reward"], "reward", source=source)
    if reward is not None and "reaction" in table.columns:
        return reward.calculate_reward(space.read(table, source=source), reaction_values(table["reaction"], source=source))
    raise SchemaError(f"{source}: missing column 'reward' (the reward each logged decision earned)")


# --- per-action columns ------------------------------------------------------------------------
def action_labels(space: ActionSpace) -> list[str]:
    """Column suffix of every joint action in joint order: '0' … '15', or '0_0', '0_1', … for [4, 4]."""
    return ["_".join(map(str, combo)) for combo in itertools.product(*(range(s) for s in space.sizes))]


def per_action_columns(
    table: pd.DataFrame, prefix: str, space: ActionSpace | None, source: str, logs: pd.DataFrame | None = None
) -> tuple[ActionSpace, list[str]]:
    """The action space and the `prefix<action>` columns of `table` in joint order. Without `space`, the
    space is read from the column names (the largest index + 1 per choice set), widened to cover the
    actions in `logs`, so that a missing column is named rather than a logged action refused."""
    found = {str(c)[len(prefix):]: str(c) for c in table.columns if str(c).startswith(prefix)}
    hint = ""
    example = f"{prefix}0 … {prefix}15, or {prefix}0_0 … {prefix}3_3 for two choice sets"
    if not found:
        raise SchemaError(f"{source}: no columns named {prefix}<action>; expected one per action ({example})")
    if space is None:
        try:
            parsed = [tuple(int(part) for part in label.split("_")) for label in found]
        except ValueError:
            bad = next(c for label, c in found.items() if not all(p.isdigit() for p in label.split("_")))
            raise SchemaError(f"{source}: column '{bad}' does not name an action; expected {example}") from None
        if len({len(p) for p in parsed}) > 1:
            raise SchemaError(f"{source}: the {prefix}<action> columns name actions of different lengths ({sorted(found.values())[:4]} …)")
        sizes = np.max(parsed, axis=0) + 1
        for j, name in enumerate(ActionSpace(tuple(sizes)).column_names() if logs is not None else []):
            logged = pd.to_numeric(logs[name], errors="coerce").max() if name in logs.columns else np.nan
            if logged >= sizes[j]:
                sizes[j] = int(logged) + 1
                hint = f" (the logs' column '{name}' holds action {int(logged)})"
        space = ActionSpace(tuple(int(s) for s in sizes))
    labels = action_labels(space)
    missing = [prefix + label for label in labels if label not in found]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing[:5]}{' …' if len(missing) > 5 else ''}; expected one "
                          f"{prefix}<action> column for each of the {space.n_joint} actions of action space "
                          f"{list(space.sizes)}{hint}")
    extra = sorted(set(found) - set(labels))
    if extra:
        raise SchemaError(f"{source}: column(s) {[found[e] for e in extra][:5]} name no action of action space {list(space.sizes)}")
    return space, [found[label] for label in labels]


def read_target(
    table: pd.DataFrame, logs: pd.DataFrame, *, space: ActionSpace | None = None, source: str = "target"
) -> tuple[ActionSpace, np.ndarray]:
    """The target policy's (n, n_actions) probabilities from `probability_<action>` columns, row-aligned
    with the n rows of the `logs` table."""
    space, columns = per_action_columns(table, TARGET_PREFIX, space, source, logs)
    if len(table) != len(logs):
        raise SchemaError(f"{source}: {len(table)} rows, but the logs have {len(logs)}; the target must give the "
                          f"probabilities of every action for each logged row, in the same order")
    return space, numeric_matrix(table, columns, source=source)


@dataclass
class TargetPolicy:
    """A target policy read from `probability_<action>` columns whose actions are labels: 0 … 15, but also
    1 … 3, 'email', 'sms'. Index i of choice set j is the action `labels[j][i]` (labels in natural order);
    `logs` is the logs table with its action columns recoded to those indices, ready for `read_logs`."""

    space: ActionSpace
    probability: np.ndarray  # (n, n_joint)
    labels: list[list[str]]
    logs: pd.DataFrame


def read_target_policy(table: pd.DataFrame, logs: pd.DataFrame, *, source: str = "target",
                       logs_source: str = "logs") -> TargetPolicy:
    """The target policy of standalone logs: its actions are the labels of its `probability_<action>`
    columns (for several choice sets `probability_<a0>_<a1>`, one column per combination), matched with
    the logs' `action` (or `action_0`, `action_1`, …) values as text, so 3, 3.0 and '3' are one action."""
    names = logged_action_columns(logs, logs_source)
    found = {str(c)[len(TARGET_PREFIX):]: str(c) for c in table.columns if str(c).startswith(TARGET_PREFIX)}
    if not found:
        raise SchemaError(f"{source}: no columns named {TARGET_PREFIX}<action>; expected one per action ({TARGET_PREFIX}0 … "
                          f"{TARGET_PREFIX}15, {TARGET_PREFIX}email, or {TARGET_PREFIX}0_0 … {TARGET_PREFIX}3_3 for two choice sets)")
    columns_of: dict[tuple[str, ...], str] = {}
    for label, column in found.items():
        parts = (label,) if len(names) == 1 else tuple(label.split("_"))
        if len(parts) != len(names) or "" in parts:
            raise SchemaError(f"{source}: column '{column}' does not name an action of the logs' {len(names)} choice sets "
                              f"{names}; expected {TARGET_PREFIX}<{'>_<'.join(names)}>")
        columns_of[parts] = column
    labels = [sorted({parts[j] for parts in columns_of}, key=natural_key) for j in range(len(names))]
    coded = logs.reset_index(drop=True)  # a new frame: recoding its action columns leaves `logs` as given
    for name, known in zip(names, labels):
        values = coded[name]
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
            raise SchemaError(f"{logs_source}: column '{name}' is empty in row {row}; expected the logged action")
        text = values.map(category_text)
        index = pd.Index(known).get_indexer(text)
        if (index < 0).any():
            row = int(np.flatnonzero(index < 0)[0])
            what = f"missing column '{TARGET_PREFIX}{text.iloc[row]}'" if len(names) == 1 else \
                f"no {TARGET_PREFIX}<…> column names action {text.iloc[row]!r} of choice set '{name}'"
            raise SchemaError(f"{source}: {what} for the action the logs' column '{name}' holds in row {row + 1} "
                              f"({logs_source}); the target gives probabilities for the actions {known}")
        coded[name] = index
    missing = [TARGET_PREFIX + "_".join(combo) for combo in itertools.product(*labels) if combo not in columns_of]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing[:5]}{' …' if len(missing) > 5 else ''}; with several choice "
                          f"sets every combination of actions needs its column")
    if len(table) != len(logs):
        raise SchemaError(f"{source}: {len(table)} rows, but the logs have {len(logs)}; the target must give the "
                          f"probabilities of every action for each logged row, in the same order")
    probability = numeric_matrix(table, [columns_of[combo] for combo in itertools.product(*labels)], source=source)
    return TargetPolicy(ActionSpace(tuple(len(known) for known in labels)), probability, labels, coded)


def logged_action_columns(logs: pd.DataFrame, source: str) -> list[str]:
    """`['action']`, or `['action_0', 'action_1', …]` for several choice sets."""
    if "action" in logs.columns:
        return ["action"]
    names = []
    while f"action_{len(names)}" in logs.columns:
        names.append(f"action_{len(names)}")
    if not names:
        raise SchemaError(f"{source}: missing column 'action' (or action_0, action_1, … for several choice sets), "
                          f"the action each logged decision took")
    return names
