"""Synthetic customers: nextbest's VAE, GAN and MADE against the TVAE and CTGAN that SDV 2.x wraps.

    python benchmarks/bench_synth.py        # writes benchmarks/results/synth.json (about 15 minutes here)

Same tables, same train/holdout split, same epochs, same quality report, one run, one torch thread
each. The peers are the `ctgan` package's TVAE and CTGAN (SDV's TVAESynthesizer and CTGANSynthesizer
fit these classes); SDV 2.0.0 itself needs pandas < 3 and python-dateutil < 3 and does not install
beside nextbest's pins. What SDV adds around them by default is done here too: a numeric column with
empty cells gets a null-indicator column, and sampled numbers are clipped to the real range and
rounded like the real column. Then a 100,000 × 30 table shows nextbest's fit time at scale.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nextbest.generative import GENERATORS
from nextbest.generative.columns import infer_spec
from nextbest.generative.datasets import cdnow_customers, crm_customers
from nextbest.generative.quality import quality_report
from nextbest.io import write_json

EPOCHS = 80
TRAIN, HOLDOUT = 4000, 1000
SCALE_ROWS = 100_000
OURS = {"nextbest vae": ("vae", {}), "nextbest gan": ("gan", {}), "nextbest made": ("made", {})}
VARIANTS = {"nextbest gan (wgan-gp)": ("gan", {"loss": "wgan-gp"})}  # the measured choice of GAN objective
SCORES = ["quality", "column_shapes", "pair_trends", "detection", "ml_efficacy", "privacy"]


def peers() -> dict:
    try:
        import ctgan
    except ImportError:
        print("ctgan is not installed (pip install -e '.[bench]'): peers skipped", flush=True)
        return {}
    return {f"ctgan {ctgan.__version__} TVAE": ctgan.TVAE, f"ctgan {ctgan.__version__} CTGAN": ctgan.CTGAN}


def fit_peer(cls, train: pd.DataFrame, seed: int):
    """Fit a ctgan model the way SDV would feed it; returns a function n → synthetic table."""
    spec = infer_spec(train)
    table = train.copy()
    discrete = [c.name for c in spec.categorical]
    for c in spec.numeric:
        if c.missing:  # SDV's default: a null-indicator column, cells filled with the mean
            table[f"{c.name}.is_null"] = np.where(table[c.name].isna(), "yes", "no")
            table[c.name] = table[c.name].fillna(table[c.name].mean())
            discrete.append(f"{c.name}.is_null")
    torch.manual_seed(seed)
    model = cls(epochs=EPOCHS, enable_gpu=False)
    model.fit(table, discrete_columns=discrete)

    def sample(n: int) -> pd.DataFrame:
        out = model.sample(n)
        for c in spec.numeric:  # SDV's defaults: enforce min/max and rounding
            values = pd.to_numeric(out[c.name], errors="coerce").clip(c.minimum, c.maximum).round(c.decimals)
            if c.missing:
                values = values.where(out.pop(f"{c.name}.is_null") == "no")
            out[c.name] = values.astype("int64") if c.dtype == "int" else values
        return out[train.columns]

    return sample


def ours_model(name: str, settings: dict):
    """train → (n → synthetic table, held-out scores) for one of nextbest's generators."""
    def fit(train: pd.DataFrame):
        generator = GENERATORS[name]({**settings, "epochs": EPOCHS, "seed": 0}).fit(train)
        keep = ("validation_log_likelihood", "validation_marginals_log_likelihood", "validation_elbo")
        return (lambda n: generator.sample(n, seed=0)), {k: v for k, v in generator.summary.items() if k in keep}

    return fit


def peer_model(cls):
    return lambda train: (fit_peer(cls, train, 0), {})


def run_table(label: str, table: pd.DataFrame, target: str, models: dict, seed: int = 0) -> dict:
    order = np.random.default_rng(seed).permutation(len(table))
    train = table.iloc[order[:TRAIN]].reset_index(drop=True)
    holdout = table.iloc[order[TRAIN : TRAIN + HOLDOUT]].reset_index(drop=True)
    results = {}
    for model, fit in models.items():
        started = time.perf_counter()
        sample, extra = fit(train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        synthetic = sample(len(train))
        sample_seconds = time.perf_counter() - started
        report = quality_report(train, synthetic, holdout=holdout, target=target, seed=seed)
        results[model] = {"fit_seconds": fit_seconds, "sample_seconds": sample_seconds, **report.scores,
                          "detection_auc": report.detection["auc"], **extra}
        print(f"{label:6s} {model:26s} fit {fit_seconds:6.1f} s  " + "  ".join(f"{k} {report.scores[k]:.3f}" for k in SCORES),
              flush=True)
    return {"train_rows": len(train), "holdout_rows": len(holdout), "columns": table.shape[1], "target": target,
            "results": results}


def main() -> None:
    torch.set_num_threads(1)  # nextbest's default; the peers get the same
    ours = {model: ours_model(*spec) for model, spec in OURS.items()}
    variants = {model: ours_model(*spec) for model, spec in VARIANTS.items()}
    theirs = {model: peer_model(cls) for model, cls in peers().items()}
    started = time.perf_counter()
    tables = {
        "crm": run_table("crm", crm_customers(TRAIN + HOLDOUT, seed=0), "churned", {**ours, **variants, **theirs}),
        "cdnow": run_table("cdnow", cdnow_customers(), "bought_1998h1", {**ours, **theirs}),
    }
    scale = run_scale()
    result = {
        "what": "same tables, split, epochs and quality report for every model; fit and sample wall seconds",
        "epochs": EPOCHS, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread, Python {platform.python_version()}",
        "torch": torch.__version__, "seconds": time.perf_counter() - started, "tables": tables, "scale": scale,
    }
    result["readme"] = readme(result)
    write_json(Path(__file__).parent / "results" / "synth.json", result)
    print(result["readme"])


def run_scale() -> dict:
    """Default settings (epochs chosen for ~4000 gradient steps) on 100,000 × 30 generated customers."""
    table = crm_customers(SCALE_ROWS + 10_000, seed=1, wide=True)
    train, holdout = table.iloc[:SCALE_ROWS], table.iloc[SCALE_ROWS:]
    out = {"rows": len(train), "columns": train.shape[1], "results": {}}
    for model, (name, settings) in OURS.items():
        started = time.perf_counter()
        generator = GENERATORS[name](settings).fit(train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        synthetic = generator.sample(len(holdout), seed=0)
        sample_seconds = time.perf_counter() - started
        report = quality_report(train, synthetic, holdout=holdout, target="churned")
        out["results"][model] = {"epochs": generator.epochs, "fit_seconds": fit_seconds,
                                 "sample_rows_per_second": len(holdout) / sample_seconds, **report.scores}
        print(f"scale  {model:26s} {generator.epochs} epochs, fit {fit_seconds:6.1f} s, quality {report.scores['quality']:.3f}",
              flush=True)
    return out


def readme(result: dict) -> str:
    lines = [f"Synthetic customers (`benchmarks/bench_synth.py`): {TRAIN:,} training rows, {HOLDOUT:,} held-out rows, "
             f"{result['epochs']} epochs for every model, one torch thread; scores in [0, 1], higher is better; "
             "detection AUC 0.5 is best."]
    for label, table in result["tables"].items():
        lines += ["", f"**{label}** ({table['columns']} columns, ML-efficacy target `{table['target']}`)", "",
                  "| model | fit s | quality | shapes | pairs | detection AUC | ML efficacy | privacy |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for model, r in table["results"].items():
            lines.append(f"| {model} | {r['fit_seconds']:.0f} | {r['quality']:.3f} | {r['column_shapes']:.3f} | "
                         f"{r['pair_trends']:.3f} | {r['detection_auc']:.3f} | {r['ml_efficacy']:.3f} | {r['privacy']:.3f} |")
        lines += [_ratio(table["results"], ours, theirs) for ours, theirs in (("vae", "TVAE"), ("gan", "CTGAN"))]
        made = table["results"]["nextbest made"]
        if "validation_log_likelihood" in made:
            lines.append(f"\nMADE held-out log-likelihood {made['validation_log_likelihood']:.2f} nats/row "
                         f"(independent columns: {made['validation_marginals_log_likelihood']:.2f}).")
    scale = result["scale"]
    lines += ["", f"**Scale**: {scale['rows']:,} rows × {scale['columns']} columns, default settings:", "",
              "| model | epochs | fit s | quality |", "|---|---:|---:|---:|"]
    for model, r in scale["results"].items():
        lines.append(f"| {model} | {r['epochs']} | {r['fit_seconds']:.0f} | {r['quality']:.3f} |")
    return "\n".join(lines)


def _ratio(results: dict, ours: str, theirs: str) -> str:
    peer = next((m for m in results if m.endswith(f" {theirs}")), None)
    if peer is None:
        return ""
    a, b = results[f"nextbest {ours}"], results[peer]
    better = [k for k in SCORES if a[k] >= b[k]]
    return (f"\nnextbest {ours} against {theirs}: fit {b['fit_seconds'] / a['fit_seconds']:.1f}× faster, "
            f"at least as good on {len(better)} of {len(SCORES)} scores"
            + ("" if len(better) == len(SCORES) else f" (not on {', '.join(k for k in SCORES if k not in better)})") + ".")


if __name__ == "__main__":
    main()
