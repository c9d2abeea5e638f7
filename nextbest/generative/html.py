"""The quality report as one self-contained HTML page (figures embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from nextbest.generative import plots
from nextbest.generative.quality import QualityReport
from nextbest.io import atomic_write_bytes

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"""


def write_html(report: QualityReport, path: str | Path, title: str = "Synthetic data quality") -> Path:
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{report.rows['real']} real rows, {report.rows['synthetic']} synthetic rows; held-out real rows: "
        f"{html.escape(report.holdout)}. Every score is in [0, 1], 1 best.</p>",
        _table(["score", "value"], [[name.replace("_", " "), f"{value:.3f}"] for name, value in report.scores.items()]),
        "<h2>Column shapes</h2>", _figure(plots.marginals(report)),
        _table(["column", "kind", "metric", "distance", "score"],
               [[s["column"], s["kind"], s["metric"], f"{s['distance']:.3f}", f"{s['score']:.3f}"] for s in report.column_shapes]),
        "<h2>Pair trends</h2>", _figure(plots.pair_differences(report)),
        "<h2>Detection</h2>", _dict(report.detection),
        "<h2>Machine-learning efficacy</h2>", _dict(report.ml_efficacy),
        "<h2>Privacy</h2>", _dict(report.privacy),
    ]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>" \
           f"</head><body>{''.join(sections)}</body></html>"
    return atomic_write_bytes(path, page.encode())


def _figure(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plots.plt.close(figure)
    return f"<img alt='figure' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _dict(values: dict) -> str:
    return _table(["", ""], [[k.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else v] for k, v in values.items()])
