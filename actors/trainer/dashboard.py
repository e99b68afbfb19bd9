"""The training dashboard: one self-contained HTML page in the run's report folder.

Plots are hand-written SVG (no plotting dependency, nothing to load from the network): each
agent's held-out score before and after every session, the ensemble weights over the cycles,
and the rolling Sharpe of the ensemble and the desk; tables give the trends with their forecast
and alerts, the latest sessions and every version with the live one marked.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from actors.trainer.analytics import MetricTrend
from actors.trainer.store import ModelVersion
from cycle.messages import CycleOutcome, TrainingSession

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
WIDTH, HEIGHT, PAD = 720, 240, 48
LATEST_SESSIONS = 40

Series = dict[str, list[tuple[float, float]]]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def line_chart(series: Series, title: str, x_label: str) -> str:
    """An SVG line chart with markers, min/max ticks on both axes and a legend."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    head = f'<h3>{html.escape(title)}</h3>'
    if not points:
        return head + "<p>no data yet</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    if y1 <= y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)

    def sx(x: float) -> float:
        return PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD)

    def sy(y: float) -> float:
        return HEIGHT - PAD + (y - y0) / (y1 - y0) * (2 * PAD - HEIGHT)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="10">{_fmt(y1)}</text>',
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end" font-size="10">'
        f'{_fmt(y0)}</text>',
        f'<text x="{PAD}" y="{HEIGHT - PAD + 14}" font-size="10">{_fmt(x0)}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 14}" text-anchor="end" font-size="10">'
        f'{_fmt(x1)}</text>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
        f'{html.escape(x_label)}</text>',
    ]
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        finite = [(x, y) for x, y in values if math.isfinite(y)]
        if finite:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}"/>')
            if len(finite) <= 60:
                parts += [
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>'
                    for x, y in finite
                ]
        parts.append(
            f'<text x="{PAD + 6 + 150 * i}" y="{PAD - 8}" font-size="11" fill="{color}">'
            f'{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return head + "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_dashboard(
    run_id: str,
    outcomes: Sequence[CycleOutcome],
    sessions: Sequence[TrainingSession],
    versions: dict[str, list[ModelVersion]],
    active: dict[str, int],
    trends: Sequence[MetricTrend],
    rolling: Series,
) -> str:
    """The whole page as one HTML string."""
    sections = [f"<h1>Training dashboard: run {html.escape(run_id)}</h1>"]
    sections.append(
        f"<p>{len(outcomes)} cycles observed, {len(sessions)} training sessions, "
        f"{sum(s.outcome == 'deployed' for s in sessions)} deployed.</p>"
    )
    for agent in sorted({s.agent for s in sessions}):
        own = [s for s in sessions if s.agent == agent and s.score_before is not None]
        series: Series = {
            "before (live version)": [(i + 1, s.score_before or 0.0) for i, s in enumerate(own)],
            "after (candidate)": [
                (i + 1, s.score_after if s.score_after is not None else math.nan)
                for i, s in enumerate(own)
            ],
        }
        sections.append(line_chart(series, f"{agent}: held-out score per session", "session"))
    names = sorted({n for o in outcomes for n in o.weights})
    sections.append(line_chart(
        {n: [(o.cycle, o.weights.get(n, math.nan)) for o in outcomes] for n in names},
        "ensemble weights over time", "cycle",
    ))
    sections.append(line_chart(rolling, "rolling Sharpe (annualised)", "cycle"))
    sections.append("<h2>Trends, forecast one window ahead, alerts</h2>")
    sections.append(_table(
        ("agent", "metric", "current", "baseline", "slope / cycle", "forecast", "z", "alert"),
        [
            (t.agent, t.metric, _fmt(t.current), _fmt(t.baseline), _fmt(t.slope),
             _fmt(t.forecast), _fmt(t.z), "ALERT" if t.alert else "")
            for t in trends
        ],
    ))
    sections.append(f"<h2>Latest {LATEST_SESSIONS} sessions</h2>")
    sections.append(_table(
        ("cycle", "agent", "mode", "trigger", "lr", "window", "before", "after", "diff s.e.",
         "outcome", "version", "live effect", "seconds", "reason"),
        [
            (str(s.cycle), s.agent, s.mode.value, s.trigger, _fmt(s.learning_rate),
             str(s.window), _fmt(s.score_before), _fmt(s.score_after), _fmt(s.diff_se),
             s.outcome, f"{s.version_before} -> {_fmt_version(s.version_after)}",
             _fmt(s.live_effect), f"{s.duration_s:.3f}", s.reason)
            for s in list(sessions)[-LATEST_SESSIONS:]
        ],
    ))
    sections.append("<h2>Versions</h2>")
    sections.append(_table(
        ("agent", "version", "live", "created", "session", "applied"),
        [
            (agent, str(v.version), "*" if active.get(agent) == v.version else "", v.created_at,
             v.session_id or "-", v.applied)
            for agent, listed in sorted(versions.items())
            for v in listed
        ],
    ))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Training dashboard</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )


def _fmt_version(version: int | None) -> str:
    return "-" if version is None else str(version)


def write_dashboard(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
