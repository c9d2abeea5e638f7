"""How good a synthetic table is, against the real one: shapes, pair trends, detection, ML efficacy, privacy.

Every score is in [0, 1], 1 best:

- column shapes: 1 − Kolmogorov–Smirnov statistic (numeric, on filled cells) or 1 − total variation
  distance (categorical, empty cells a category of their own);
- pair trends: 1 − |Δ Pearson correlation| / 2 for two numeric columns, else 1 − total variation of
  the contingency table (numeric columns in 10 quantile bins of the real column, plus 'empty');
- detection: a gradient-boosted classifier tries to tell real rows from synthetic ones
  (3-fold cross-validated ROC AUC); score = 1 − (2·max(AUC, ½) − 1), so AUC ½ scores 1;
- ML efficacy: a model of `target` trained on synthetic rows, tested on real held-out rows, against
  the same model trained on real rows: F1 (macro) for a categorical target, R² for a numeric one;
- privacy: distance of each synthetic row to the closest real training row (DCR) against the same
  distance for real held-out rows; synthetic rows no closer than fresh real customers score 1.

These are the definitions of SDMetrics' KSComplement, TVComplement, CorrelationSimilarity,
ContingencySimilarity and detection metrics, written here because SDMetrics requires pandas < 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from threadpoolctl import threadpool_limits

from nextbest.data.encoding import check_columns
from nextbest.errors import ConfigError, DataError
from nextbest.generative.columns import Column, TableSpec, category_codes, infer_spec

PAIR_BINS = 10
DETECTION_ROWS = 5000  # per side
EFFICACY_ROWS = 20000
PRIVACY_QUERIES, PRIVACY_REFERENCE = 2000, 20000
STEPS = ("column shapes", "pair trends", "detection", "ML efficacy", "privacy")


@dataclass
class QualityReport:
    rows: dict[str, int]
    holdout: str  # where the real held-out rows came from
    scores: dict[str, float]
    column_shapes: list[dict[str, Any]]
    pair_trends: list[dict[str, Any]]
    detection: dict[str, Any]
    ml_efficacy: dict[str, Any]
    privacy: dict[str, Any]
    marginals: dict[str, dict[str, Any]] = field(repr=False)  # per column: what plots.marginal draws

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pair_difference_matrix(self) -> tuple[list[str], np.ndarray]:
        """Column names and the (k, k) matrix of 1 − pair-trend score (0 on the diagonal)."""
        names = list(self.marginals)
        index = {name: i for i, name in enumerate(names)}
        matrix = np.zeros((len(names), len(names)))
        for pair in self.pair_trends:
            i, j = index[pair["column_a"]], index[pair["column_b"]]
            matrix[i, j] = matrix[j, i] = 1.0 - pair["score"]
        return names, matrix


def quality_report(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    categorical_columns: list[str] | None = None,
    seed: int = 0,
    threads: int = 1,
    sources: tuple[str, str, str] = ("the real table", "the synthetic table", "the holdout table"),
    on_step: Callable[[str], None] | None = None,
) -> QualityReport:
    """Score `synthetic` against `real` (see the module docstring). Without `holdout`, 30% of `real` is held out."""
    spec = infer_spec(real, categorical_columns, max_categories=max(len(real), 1), source=sources[0], allow_constant=True)
    synthetic = _conform(synthetic, spec, sources[1])
    rng = np.random.default_rng(seed)
    if holdout is None:
        order = rng.permutation(len(real))
        cut = int(0.7 * len(real))
        train, holdout = real.iloc[order[:cut]], real.iloc[order[cut:]]
        where = "30% of the real table, split off at random (the generator may have seen these rows)"
    else:
        train, holdout, where = real, _conform(holdout, spec, sources[2]), sources[2]
    target = target or spec.names[-1]
    if target not in spec.names:
        raise ConfigError(f"target {target!r} is not a column; the tables have columns {spec.names}")
    step = on_step or (lambda name: None)
    with threadpool_limits(threads):  # OpenMP in the classifiers crawls when the cores are shared
        return _report(real, synthetic, train, holdout, where, spec, target, rng, step)


def _report(real, synthetic, train, holdout, where, spec, target, rng, step) -> QualityReport:
    real_codes, synthetic_codes, marginals = _discrete(real, synthetic, spec)
    shapes = [_shape(real, synthetic, column, real_codes[column.name], synthetic_codes[column.name]) for column in spec.columns]
    step(STEPS[0])
    pairs = _pairs(real, synthetic, spec, real_codes, synthetic_codes)
    step(STEPS[1])
    detection = _detection(real, synthetic, spec, rng)
    step(STEPS[2])
    efficacy = _efficacy(train, holdout, synthetic, spec, target, rng)
    step(STEPS[3])
    privacy = _privacy(train, holdout, synthetic, spec, rng)
    step(STEPS[4])
    shape_score = float(np.mean([s["score"] for s in shapes]))
    pair_score = float(np.mean([p["score"] for p in pairs])) if pairs else 1.0
    scores = {
        "quality": (shape_score + pair_score) / 2, "column_shapes": shape_score, "pair_trends": pair_score,
        "detection": detection["score"], "ml_efficacy": efficacy["score"], "privacy": privacy["score"],
    }
    rows = {"real": len(real), "synthetic": len(synthetic), "real_train": len(train), "holdout": len(holdout)}
    return QualityReport(rows, where, scores, shapes, pairs, detection, efficacy, privacy, marginals)


# --------------------------------------------------------------------- preparing the tables
def _conform(table: pd.DataFrame, spec: TableSpec, source: str) -> pd.DataFrame:
    """The table with the real columns, in order; numeric columns as floats (text in them names the row)."""
    check_columns(table, spec.names, source=source)
    if len(table) == 0:
        raise DataError(f"{source}: the table has no rows")
    table = table[spec.names].copy()
    for column in spec.numeric:
        values = table[column.name]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values.notna().to_numpy() & numbers.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column '{column.name}' has {values.iloc[row]!r} in row {row + 1}; expected a number")
        table[column.name] = numbers.astype(float)
    return table


def _numbers(table: pd.DataFrame, column: Column) -> np.ndarray:
    return table[column.name].to_numpy(dtype=float, na_value=np.nan)


def _discrete(real: pd.DataFrame, synthetic: pd.DataFrame, spec: TableSpec):
    """Codes of every column in both tables (numeric: real-quantile bins, then 'empty'; categorical:
    categories, 'empty', then 'other' for synthetic values the real table does not have), and the marginals."""
    real_codes, synthetic_codes, marginals = {}, {}, {}
    for column in spec.columns:
        if column.kind == "categorical":
            labels = column.categories + (["(empty)"] if column.missing else [])
            r, s = category_codes(real[column.name], column), category_codes(synthetic[column.name], column)
            s = np.where(s < 0, len(labels), s)
            labels = labels + (["(other)"] if (s == len(labels)).any() else [])
            edges = None
        else:
            x, y = _numbers(real, column), _numbers(synthetic, column)
            edges = np.unique(np.nanquantile(x, np.linspace(0, 1, PAIR_BINS + 1)))
            r, s = _bin(x, edges), _bin(y, edges)
            labels = None
        real_codes[column.name], synthetic_codes[column.name] = r, s
        marginals[column.name] = _marginal(real, synthetic, column, r, s, labels)
    return real_codes, synthetic_codes, marginals


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    inner = max(len(edges) - 1, 1)
    codes = np.clip(np.searchsorted(edges, values, "right") - 1, 0, inner - 1)
    return np.where(np.isnan(values), inner, codes)


def _marginal(real, synthetic, column: Column, r: np.ndarray, s: np.ndarray, labels: list[str] | None) -> dict:
    if labels is not None:
        k = len(labels)
        return {"kind": "categorical", "labels": labels, "real": _frequencies(r, k), "synthetic": _frequencies(s, k)}
    x, y = _numbers(real, column), _numbers(synthetic, column)
    low, high = np.nanquantile(x, [0.005, 0.995])
    edges = np.linspace(low, high if high > low else low + 1.0, 31)
    histogram = lambda v: np.histogram(np.clip(v[~np.isnan(v)], low, high), edges)[0] / max(len(v), 1)
    return {"kind": "numeric", "edges": edges.tolist(), "real": histogram(x).tolist(), "synthetic": histogram(y).tolist(),
            "empty_real": float(np.isnan(x).mean()), "empty_synthetic": float(np.isnan(y).mean())}


def _frequencies(codes: np.ndarray, k: int) -> list[float]:
    return (np.bincount(codes, minlength=k) / max(len(codes), 1)).tolist()


# --------------------------------------------------------------------- the five parts
def _shape(real, synthetic, column: Column, r: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    if column.kind == "numeric":
        x, y = _numbers(real, column), _numbers(synthetic, column)
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        distance = float(ks_2samp(x, y).statistic) if len(y) else 1.0
        metric = "KS"
    else:
        k = max(r.max(), s.max()) + 1
        distance = total_variation(np.bincount(r, minlength=k), np.bincount(s, minlength=k))
        metric = "TV"
    return {"column": column.name, "kind": column.kind, "metric": metric, "distance": distance, "score": 1.0 - distance}


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """½ Σ |p/Σp − q/Σq| of two count (or frequency) vectors of the same length."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    return 0.5 * float(np.abs(p / max(p.sum(), 1e-300) - q / max(q.sum(), 1e-300)).sum())


def _pairs(real, synthetic, spec: TableSpec, real_codes, synthetic_codes) -> list[dict[str, Any]]:
    pairs = []
    for i, a in enumerate(spec.columns):
        for b in spec.columns[i + 1 :]:
            if a.kind == b.kind == "numeric":
                r, s = _correlation(real, a, b), _correlation(synthetic, a, b)
                pairs.append({"column_a": a.name, "column_b": b.name, "metric": "correlation",
                              "real": r, "synthetic": s, "score": 1.0 - abs(r - s) / 2})
            else:
                ra, rb, sa, sb = real_codes[a.name], real_codes[b.name], synthetic_codes[a.name], synthetic_codes[b.name]
                kb = max(rb.max(), sb.max()) + 1
                size = (max(ra.max(), sa.max()) + 1) * kb
                distance = total_variation(np.bincount(ra * kb + rb, minlength=size), np.bincount(sa * kb + sb, minlength=size))
                pairs.append({"column_a": a.name, "column_b": b.name, "metric": "contingency",
                              "real": None, "synthetic": None, "score": 1.0 - distance})
    return pairs


def _correlation(table: pd.DataFrame, a: Column, b: Column) -> float:
    x, y = _numbers(table, a), _numbers(table, b)
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _features(tables: list[pd.DataFrame], spec: TableSpec, exclude: str | None = None):
    """Feature matrices for scikit-learn (numbers as they are, categories as codes) and the categorical mask."""
    columns = [c for c in spec.columns if c.name != exclude]
    out = []
    for table in tables:
        parts = [category_codes(table[c.name], c).astype(float) if c.kind == "categorical" else _numbers(table, c)
                 for c in columns]
        out.append(np.stack(parts, axis=1) if parts else np.zeros((len(table), 0)))
    mask = np.array([c.kind == "categorical" and c.n_codes < 250 for c in columns], dtype=bool)
    for matrix in out:  # an unknown category (−1) must be a non-negative code for the classifier
        matrix[:, mask] = np.where(matrix[:, mask] < 0, 250, matrix[:, mask])
    return out, mask


def _subsample(table: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return table if len(table) <= n else table.iloc[rng.choice(len(table), n, replace=False)]


def _detection(real, synthetic, spec: TableSpec, rng: np.random.Generator) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = min(len(real), len(synthetic), DETECTION_ROWS)
    (x_real, x_synthetic), mask = _features([_subsample(real, n, rng), _subsample(synthetic, n, rng)], spec)
    x = np.concatenate([x_real, x_synthetic])
    y = np.r_[np.zeros(len(x_real)), np.ones(len(x_synthetic))]
    model = HistGradientBoostingClassifier(max_iter=100, categorical_features=mask if mask.any() else None,
                                           random_state=int(rng.integers(2**31)))
    folds = StratifiedKFold(3, shuffle=True, random_state=int(rng.integers(2**31)))
    probability = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, probability))
    return {"classifier": "HistGradientBoostingClassifier, 3-fold", "rows_per_side": n, "auc": auc,
            "score": 1.0 - (2 * max(auc, 0.5) - 1)}


def _efficacy(train, holdout, synthetic, spec: TableSpec, target: str, rng: np.random.Generator) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score

    column = spec.column(target)
    classify = column.kind == "categorical"
    n = min(len(train), EFFICACY_ROWS)
    sets = [_subsample(train, n, rng), _subsample(synthetic, n, rng), _subsample(holdout, EFFICACY_ROWS, rng)]
    if not classify:  # an empty numeric target cannot be scored: those rows sit out
        sets = [t[t[target].notna()] for t in sets]
    (x_real, x_synthetic, x_test), mask = _features(sets, spec, exclude=target)
    y_real, y_synthetic, y_test = [
        category_codes(t[target], column) if classify else _numbers(t, column) for t in sets
    ]
    if len(y_test) == 0 or min(len(y_real), len(y_synthetic)) < 2:
        raise DataError(f"target '{target}': too few filled rows to measure machine-learning efficacy")

    def fit_and_score(x, y) -> float:
        if classify and len(np.unique(y)) == 1:
            predicted = np.full(len(y_test), y[0])
        else:
            kind = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
            model = kind(max_iter=100, categorical_features=mask if mask.any() else None, random_state=0)
            predicted = model.fit(x, y).predict(x_test)
        return float(f1_score(y_test, predicted, average="macro") if classify else r2_score(y_test, predicted))

    real_score, synthetic_score = fit_and_score(x_real, y_real), fit_and_score(x_synthetic, y_synthetic)
    ratio = synthetic_score / real_score if real_score > 0 else 0.0
    return {"target": target, "task": "classification" if classify else "regression",
            "metric": "f1_macro" if classify else "r2", "train_real": real_score, "train_synthetic": synthetic_score,
            "test_rows": len(y_test), "score": float(np.clip(ratio, 0.0, 1.0))}


def _privacy(train, holdout, synthetic, spec: TableSpec, rng: np.random.Generator) -> dict[str, Any]:
    from sklearn.neighbors import NearestNeighbors

    reference = _subsample(train, PRIVACY_REFERENCE, rng)
    embed = _embedding(reference, spec)
    index = NearestNeighbors(n_neighbors=1).fit(embed(reference))
    closest = lambda table: index.kneighbors(embed(_subsample(table, PRIVACY_QUERIES, rng)))[0][:, 0]
    d_synthetic, d_holdout = closest(synthetic), closest(holdout)
    median_synthetic, median_holdout = float(np.median(d_synthetic)), float(np.median(d_holdout))
    ratio = median_synthetic / median_holdout if median_holdout > 0 else 1.0  # half the real rows have twins
    return {
        "distance": "Euclidean over real percentiles of numbers (0–1) and categories (mismatch 1)",
        "dcr_synthetic_median": median_synthetic, "dcr_holdout_median": median_holdout, "dcr_ratio": ratio,
        "synthetic_closer_than_holdout_5th_percentile": float(np.mean(d_synthetic < np.quantile(d_holdout, 0.05))),
        "exact_copies_synthetic": float(np.mean(d_synthetic < 1e-6)),  # numerical noise of the distance
        "exact_copies_holdout": float(np.mean(d_holdout < 1e-6)),
        "score": float(min(1.0, ratio)),
    }


def _embedding(reference: pd.DataFrame, spec: TableSpec) -> Callable[[pd.DataFrame], np.ndarray]:
    """Rows → vectors whose Euclidean distance adds, per column, the difference of real percentiles
    (numbers; an empty cell differs from a filled one by 1) or 1 for different categories."""
    sorted_values = {c.name: np.sort(v[~np.isnan(v)]) for c in spec.numeric for v in [_numbers(reference, c)]}

    def embed(table: pd.DataFrame) -> np.ndarray:
        parts = []
        for column in spec.columns:
            if column.kind == "numeric":
                values, ranks = _numbers(table, column), sorted_values[column.name]
                empty = np.isnan(values)
                percentile = np.searchsorted(ranks, np.where(empty, 0.0, values)) / max(len(ranks), 1)
                parts += [np.where(empty, 0.0, percentile)[:, None], empty[:, None].astype(float)]
            else:
                codes = category_codes(table[column.name], column)
                one_hot = np.zeros((len(table), column.n_codes + 1))
                one_hot[np.arange(len(table)), np.where(codes < 0, column.n_codes, codes)] = 1 / np.sqrt(2)
                parts.append(one_hot)
        return np.concatenate(parts, axis=1)

    return embed
