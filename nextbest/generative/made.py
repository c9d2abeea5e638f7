"""An autoregressive model of a table: MADE (Germain et al. 2015) over the columns in a fixed order.

Every column becomes a categorical variable: categories as they are, numeric columns as quantile
bins (a value that alone holds ≥ 1/n_bins of the rows, such as 0 purchases, is a bin of its own;
an empty cell is a bin too). One masked network outputs, for every column d, the logits of
p(x_d | x_<d): a unit of degree m sees only columns 1…m, and column d's outputs see only units of
degree < d, so the product of the outputs is a normalized joint distribution and

    log p(x) = Σ_d log p(x_d | x_1 … x_{d−1})

is exact (nats per row of the binned table): `log_likelihood` reports it on held-out rows, next to
the independent-marginals baseline Σ_d log p(x_d). Sampling draws the columns in order and a number
within its bin from the bin's own empirical quantiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from nextbest.errors import ConfigError
from nextbest.generative.base import EpochCallback, Generator, GeneratorConfig
from nextbest.generative.columns import Column, category_codes, category_values, numeric_values
from nextbest.generative.layers import block_log_softmax
from nextbest.generative.transform import sample_codes
from nextbest.nets.early_stopping import EarlyStopping

INNER_QUANTILES = 17  # per interval bin: enough to follow the shape of a skewed tail within the bin


class MADEConfig(GeneratorConfig):
    hidden: list[PositiveInt] = Field(default_factory=lambda: [256, 256], description="masked hidden layers")
    bins: PositiveInt = Field(24, ge=2, description="quantile bins per numeric column")
    order: list[str] | None = Field(None, description="column order of the factorization (default: the table's)")


class Bins:
    """One numeric column as bins: atoms (frequent exact values), then quantile intervals, then 'missing'."""

    def __init__(self, atoms: np.ndarray, edges: np.ndarray, inner: np.ndarray, missing: bool):
        self.atoms, self.edges, self.inner, self.missing = atoms, edges, inner, missing

    @property
    def n_codes(self) -> int:
        return len(self.atoms) + len(self.inner) + int(self.missing)

    @classmethod
    def fit(cls, values: np.ndarray, bins: int) -> Bins:
        missing = bool(np.isnan(values).any())
        values = values[~np.isnan(values)]
        distinct, counts = np.unique(values, return_counts=True)
        atoms = distinct[counts >= len(values) / bins]
        rest = values[~np.isin(values, atoms)]
        if len(rest) == 0:
            return cls(atoms, np.zeros(0), np.zeros((0, INNER_QUANTILES)), missing)
        edges = np.unique(np.quantile(rest, np.linspace(0, 1, max(bins - len(atoms), 1) + 1)))
        if len(edges) == 1:
            edges = np.repeat(edges, 2)
        which = np.clip(np.searchsorted(edges, rest, "right") - 1, 0, len(edges) - 2)
        inner = np.stack([
            np.quantile(rest[which == j], np.linspace(0, 1, INNER_QUANTILES)) if (which == j).any()
            else np.linspace(edges[j], edges[j + 1], INNER_QUANTILES)
            for j in range(len(edges) - 1)
        ])
        return cls(atoms, edges, inner, missing)

    def codes(self, values: np.ndarray) -> np.ndarray:
        empty = np.isnan(values)
        codes = len(self.atoms) + np.clip(np.searchsorted(self.edges, values, "right") - 1, 0, max(len(self.inner) - 1, 0))
        atom = np.searchsorted(self.atoms, values)
        is_atom = (atom < len(self.atoms)) & (self.atoms[np.minimum(atom, len(self.atoms) - 1)] == values) if len(self.atoms) else False
        codes = np.where(is_atom, atom, codes)
        if len(self.inner) == 0:  # every value is an atom: an unseen value goes to the nearest one
            codes = np.where(is_atom, atom, np.abs(values[:, None] - self.atoms[None, :]).argmin(axis=1))
        return np.where(empty, self.n_codes - 1, codes)

    def values(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.full(len(codes), np.nan)
        atom = codes < len(self.atoms)
        out[atom] = self.atoms[codes[atom]]
        interval = (codes >= len(self.atoms)) & (codes < len(self.atoms) + len(self.inner))
        if interval.any():
            quantiles = self.inner[codes[interval] - len(self.atoms)]  # (m, INNER_QUANTILES)
            position = rng.random(interval.sum()) * (INNER_QUANTILES - 1)
            low = np.floor(position).astype(int).clip(max=INNER_QUANTILES - 2)
            rows = np.arange(len(quantiles))
            out[interval] = quantiles[rows, low] + (position - low) * (quantiles[rows, low + 1] - quantiles[rows, low])
        return out

    def state(self) -> dict:
        return {"atoms": self.atoms, "edges": self.edges, "inner": self.inner, "missing": self.missing}


class MaskedLinear(nn.Linear):
    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADENet(nn.Module):
    """Masked MLP plus a masked direct input → output layer; `degrees` is the column number (1…D) of each unit."""

    def __init__(self, degrees: np.ndarray, hidden: list[int]):
        super().__init__()
        n_columns = int(degrees.max())
        layers, previous = [], torch.as_tensor(degrees)
        for size in hidden:
            unit = torch.as_tensor(np.arange(size) % max(n_columns - 1, 1) + 1)  # degrees 1 … D−1, cycled
            layers += [MaskedLinear(unit[:, None] >= previous[None, :]), nn.ReLU()]
            previous = unit
        self.hidden = nn.Sequential(*layers)
        out = torch.as_tensor(degrees)
        self.output = MaskedLinear(out[:, None] > previous[None, :])
        self.direct = MaskedLinear(out[:, None] > torch.as_tensor(degrees)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x)) + self.direct(x)


class MADE(Generator):
    name = "made"
    summary_text = "autoregressive masked network (MADE) over binned columns; exact held-out log-likelihood"
    Config = MADEConfig

    # ----------------------------------------------------------------- the binned table
    def _columns(self) -> list[Column]:
        order = self.config.order or self.spec.names
        unknown = sorted(set(order) ^ set(self.spec.names))
        if unknown or len(order) != len(self.spec.names):
            raise ConfigError(f"hyperparameter 'order' must list every column once; it differs on {unknown}")
        return [self.spec.column(name) for name in order]

    def codes(self, table: pd.DataFrame) -> np.ndarray:
        """(n, D) int64 codes of the columns in the model's order."""
        return np.stack([
            category_codes(table[c.name], c) if c.kind == "categorical"
            else self.bins[c.name].codes(table[c.name].to_numpy(dtype=float, na_value=np.nan))
            for c in self.columns
        ], axis=1)

    def one_hot(self, codes: np.ndarray) -> torch.Tensor:
        x = np.zeros((len(codes), int(self.sizes.sum())), dtype=np.float32)
        x[np.arange(len(codes))[:, None], self.starts[None, :] + codes] = 1.0
        return self.tensor(x)

    def _build(self) -> None:
        self.columns = self._columns()
        self.sizes = np.array([c.n_codes if c.kind == "categorical" else self.bins[c.name].n_codes for c in self.columns])
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        degrees = np.repeat(np.arange(1, len(self.columns) + 1), self.sizes)
        self.net = MADENet(degrees, self.config.hidden).to(self.device)

    # ----------------------------------------------------------------- likelihood
    def row_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """(batch,) exact log p(x) in nats of one-hot binned rows x (batch, Σ sizes)."""
        log_probabilities = block_log_softmax(self.net(x), list(self.starts), list(self.sizes))
        return (x * log_probabilities).sum(1)

    @torch.no_grad()
    def log_likelihood(self, table: pd.DataFrame) -> np.ndarray:
        """(n,) exact log-likelihood of each row of `table` (binned as in training), nats."""
        self.net.eval()
        return self.row_log_likelihood(self.one_hot(self.codes(table))).cpu().numpy()

    def marginal_log_likelihood(self, table: pd.DataFrame) -> np.ndarray:
        """(n,) log-likelihood under independent columns with the training frequencies (add-½ smoothing)."""
        codes = self.codes(table)
        return sum(np.log(self.marginals[d][codes[:, d]]) for d in range(len(self.columns)))

    # ----------------------------------------------------------------- fit and sample
    def _fit(self, train: pd.DataFrame, valid: pd.DataFrame, rng: np.random.Generator,
             on_epoch: EpochCallback) -> dict[str, float]:
        self.bins = {c.name: Bins.fit(train[c.name].to_numpy(dtype=float, na_value=np.nan), self.config.bins)
                     for c in self.spec.numeric}
        self._build()
        codes = self.codes(train)
        self.marginals = [(np.bincount(codes[:, d], minlength=k) + 0.5) / (len(codes) + 0.5 * k)
                          for d, k in enumerate(self.sizes)]
        with torch.no_grad():  # start from the independent-marginals model: column 1 is then right from the start
            self.net.output.bias.copy_(self.tensor(np.log(np.concatenate(self.marginals))))
            self.net.direct.bias.zero_()
        x = self.one_hot(codes)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate)
        stopper = EarlyStopping(self.net, self.config.patience, maximize=True)
        scores: dict[str, float] = {}
        for epoch in range(1, self.epochs + 1):
            self.net.train()
            total = 0.0
            for rows in self.minibatches(len(x), rng):
                log_likelihood = self.row_log_likelihood(x[rows])
                loss = -log_likelihood.mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += log_likelihood.sum().item()
            scores = {"log_likelihood": total / len(x)}
            if len(valid):
                scores["validation_log_likelihood"] = float(self.log_likelihood(valid).mean())
            on_epoch(epoch, scores)
            if len(valid) and stopper.update(scores["validation_log_likelihood"]):
                break
        stopper.restore()
        if not len(valid):
            return scores
        return {"best_epoch": int(stopper.best_epoch), "validation_log_likelihood": float(self.log_likelihood(valid).mean()),
                "validation_marginals_log_likelihood": float(self.marginal_log_likelihood(valid).mean())}

    def _sample(self, n: int, rng: np.random.Generator, conditions: dict[str, str]) -> pd.DataFrame:
        self.net.eval()
        x = torch.zeros(n, int(self.sizes.sum()), device=self.device)
        codes = np.zeros((n, len(self.columns)), dtype=np.int64)
        exact_prefix = True  # a condition on a column preceded only by conditioned columns is exact: clamp it
        for d, column in enumerate(self.columns):
            exact_prefix &= column.name in conditions
            if exact_prefix:
                codes[:, d] = column.categories.index(conditions[column.name])
            else:
                logits = self.net(x)[:, self.starts[d] : self.starts[d] + self.sizes[d]]
                codes[:, d] = sample_codes(torch.softmax(logits, dim=1).cpu().numpy(), rng)
            x[torch.arange(n), torch.as_tensor(self.starts[d] + codes[:, d], device=self.device)] = 1.0
        return self.decode(codes, rng)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        columns = {}
        for d, column in enumerate(self.columns):
            if column.kind == "categorical":
                columns[column.name] = category_values(codes[:, d], column)
            else:
                values = self.bins[column.name].values(codes[:, d], rng)
                empty = np.isnan(values)
                out = numeric_values(np.where(empty, column.minimum, values), column)
                columns[column.name] = out.astype(float).where(~empty) if column.missing else out
        return pd.DataFrame(columns)[self.spec.names]

    def _state(self) -> dict:
        return {"bins": {k: b.state() for k, b in self.bins.items()}, "marginals": self.marginals, "net": self.net.state_dict()}

    def _restore(self, state: dict) -> None:
        self.bins = {k: Bins(**b) for k, b in state["bins"].items()}
        self.marginals = state["marginals"]
        self._build()
        self.net.load_state_dict(state["net"])
