"""A variational autoencoder for tables (after TVAE, Xu et al. 2019), fitted by maximizing the ELBO.

    q(z | x) = N(μ(x), diag σ²(x))                       encoder
    p(x | z) = Π_numeric N(score; m(z), s²) · Π_categorical Cat(softmax(logits(z)))   decoder, one head per column
    ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I))

Numeric columns are normal scores (transform.py), so a Gaussian head fits any marginal shape; an
empty numeric cell drops out of its Gaussian term and is modelled by its own 'missing' head.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn

from nextbest.generative.base import EpochCallback, Generator, GeneratorConfig
from nextbest.generative.layers import block_log_softmax, mlp
from nextbest.generative.transform import Layout
from nextbest.nets.early_stopping import EarlyStopping

LOG_2PI = math.log(2 * math.pi)


class VAEConfig(GeneratorConfig):
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128, 128], description="encoder layers (decoder mirrors)")
    latent_dim: PositiveInt = Field(64, description="size of z")
    weight_decay: NonNegativeFloat = Field(1e-5, description="L2 penalty of Adam")
    kl_weight: NonNegativeFloat = Field(1.0, description="β of the KL term; 1 is the ELBO")


class VAENet(nn.Module):
    def __init__(self, width: int, n_scores: int, config: VAEConfig):
        super().__init__()
        self.encoder = mlp(width, config.hidden)
        self.mean = nn.Linear(config.hidden[-1], config.latent_dim)
        self.log_variance = nn.Linear(config.hidden[-1], config.latent_dim)
        self.decoder = nn.Sequential(mlp(config.latent_dim, config.hidden[::-1]), nn.Linear(config.hidden[0], width))
        self.log_scale = nn.Parameter(torch.full((n_scores,), math.log(0.5)))  # s of each numeric head

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mean(h), self.log_variance(h).clamp(-12.0, 8.0)


class TabularVAE(Generator):
    name = "vae"
    summary_text = "variational autoencoder (TVAE-style), Gaussian heads on normal scores, softmax heads"
    Config = VAEConfig

    def _build(self) -> None:
        layout = self.layout
        index = lambda values: torch.tensor(values, dtype=torch.long, device=self.device)
        self.score_index = index([b.start for b in layout.score_blocks])
        one_hot = layout.one_hot_blocks
        self.one_hot_index = index([i for b in one_hot for i in range(b.start, b.stop)])
        self.starts = list(np.cumsum([0] + [b.width for b in one_hot])[:-1])
        self.widths = [b.width for b in one_hot]
        # an empty numeric cell: its 'missing' unit, whose value masks the Gaussian term (−1: never empty)
        missing_unit = {b.column: b.start + 1 for b in layout.blocks if b.kind == "present"}
        self.missing_index = index([missing_unit.get(b.column, -1) for b in layout.score_blocks])
        self.net = VAENet(layout.width, len(layout.score_blocks), self.config).to(self.device)

    def negative_elbo(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch,) reconstruction NLL and (batch,) KL, in nats per row, with one reparametrized z per row."""
        mean, log_variance = self.net.encode(x)
        z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        out = self.net.decoder(z)
        scores, m = x[:, self.score_index], out[:, self.score_index]
        s = self.net.log_scale
        gaussian = 0.5 * ((scores - m) / s.exp()) ** 2 + s + 0.5 * LOG_2PI
        present = torch.where(self.missing_index >= 0, 1.0 - x[:, self.missing_index.clamp(min=0)], torch.ones_like(scores))
        log_probabilities = block_log_softmax(out[:, self.one_hot_index], self.starts, self.widths)
        reconstruction = (gaussian * present).sum(1) - (x[:, self.one_hot_index] * log_probabilities).sum(1)
        kl = -0.5 * (1 + log_variance - mean**2 - log_variance.exp()).sum(1)
        return reconstruction, kl

    def _fit(self, train: pd.DataFrame, valid: pd.DataFrame, rng: np.random.Generator,
             on_epoch: EpochCallback) -> dict[str, float]:
        self.layout = Layout.fit(train, self.spec)
        self._build()
        x = self.tensor(self.layout.encode(train, rng))
        x_valid = self.tensor(self.layout.encode(valid, rng)) if len(valid) else None
        with torch.no_grad():  # categorical heads start at the marginal frequencies
            self.net.decoder[-1].bias[self.one_hot_index] = torch.log(x[:, self.one_hot_index].mean(0) + 1e-4)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay)
        stopper = EarlyStopping(self.net, self.config.patience, maximize=True)
        scores: dict[str, float] = {}
        for epoch in range(1, self.epochs + 1):
            self.net.train()
            totals = np.zeros(2)
            for rows in self.minibatches(len(x), rng):
                reconstruction, kl = self.negative_elbo(x[rows])
                loss = (reconstruction + self.config.kl_weight * kl).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.net.log_scale.data.clamp_(math.log(0.01), 0.0)  # numeric heads between 0.01 and 1 (TVAE's bounds)
                totals += [reconstruction.sum().item(), kl.sum().item()]
            reconstruction, kl = totals / len(x)
            scores = {"elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl}
            if x_valid is not None:
                scores["validation_elbo"] = self.elbo(x_valid)
            on_epoch(epoch, scores)
            if x_valid is not None and stopper.update(scores["validation_elbo"]):
                break
        stopper.restore()
        if x_valid is None:
            return {"elbo": scores["elbo"]}
        return {"elbo": scores["elbo"], "best_epoch": int(stopper.best_epoch), "validation_elbo": float(stopper.best)}

    @torch.no_grad()
    def elbo(self, x: torch.Tensor) -> float:
        """Mean ELBO per row (nats) of encoded rows, one z per row."""
        self.net.eval()
        reconstruction, kl = self.negative_elbo(x)
        return float(-(reconstruction + kl).mean())

    def _sample(self, n: int, rng: np.random.Generator, conditions: dict[str, str]) -> pd.DataFrame:
        self.net.eval()
        z = self.tensor(rng.standard_normal((n, self.config.latent_dim)))
        return self.layout.sample(self.net.decoder(z).cpu().numpy(), rng, self.net.log_scale.exp().cpu().numpy())

    def _state(self) -> dict:
        return {"layout": self.layout.state(), "net": self.net.state_dict()}

    def _restore(self, state: dict) -> None:
        self.layout = Layout.from_state(self.spec, state["layout"])
        self._build()
        self.net.load_state_dict(state["net"])
