"""Latency plot (p50/p95/p99 against simulated users) as SVG written by hand.

Why no matplotlib: it is not a dependency of the lab, and the report must render under a strict CSP:
this SVG uses presentation attributes only (no `style=` attributes, no scripts), so it can be inlined.
"""

from __future__ import annotations

from html import escape
from typing import Any

SERIES = (("p50_ms", "p50", "#2b7bb9"), ("p95_ms", "p95", "#d9822b"), ("p99_ms", "p99", "#b83232"))


def _nice_max(v: float) -> float:
    """Round the axis maximum up to 1, 2 or 5 times a power of ten."""
    if v <= 0:
        return 1.0
    p = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 5, 10):
        if v <= m * p:
            return float(m * p)
    return float(10 * p)


def latency_svg(rows: list[dict[str, Any]], target_ms: float | None = None, width: int = 640, height: int = 320,
                max_users: int | None = None) -> str:
    """A line chart of the latency percentiles per user count; a dashed line marks the p95 target, a
    dotted vertical line the maximum users held, and a step that missed the target is ringed in red."""
    pts = [r for r in rows if isinstance(r.get("users"), (int, float))]
    if not pts:
        return ""
    left, right, top, bottom = 64, 120, 20, 44
    pw, ph = width - left - right, height - top - bottom
    users = sorted({r["users"] for r in pts})
    ymax = _nice_max(max([float(r.get(k) or 0) for r in pts for k, _, _ in SERIES] + [float(target_ms or 0)]))

    def x(u: float) -> float:
        if len(users) == 1:
            return left + pw / 2
        return left + (u - users[0]) / (users[-1] - users[0]) * pw

    def y(v: float) -> float:
        return top + ph - (v / ymax) * ph

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-labelledby="latency-title"><title id="latency-title">Latency percentiles by simulated users</title>'),
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfbfb" stroke="#999"/>']
    for k in range(6):
        v = ymax * k / 5
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end" fill="#333">{v:g}</text>')
    for u in users:
        out.append(f'<text x="{x(u):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle" fill="#333">{u:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" font-size="12" text-anchor="middle" fill="#111">simulated users</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" fill="#111" '
               f'transform="rotate(-90 14 {top + ph / 2})">latency (ms)</text>')
    if target_ms:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(target_ms):.1f}" y2="{y(target_ms):.1f}" '
                   f'stroke="#555" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + pw + 6}" y="{y(target_ms) + 4:.1f}" font-size="11" fill="#555">'
                   f'p95 target {target_ms:g}</text>')
    if max_users is not None and max_users in users:
        out.append(f'<line x1="{x(max_users):.1f}" x2="{x(max_users):.1f}" y1="{top}" y2="{top + ph}" '
                   f'stroke="#1f7a3a" stroke-width="1.5" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{x(max_users) + 4:.1f}" y="{top + 12}" font-size="11" fill="#1f7a3a">max held {max_users:g}</text>')
    for r in pts:
        if r.get("meets_target") is False and r.get("p95_ms") is not None:
            out.append(f'<circle cx="{x(r["users"]):.1f}" cy="{y(float(r["p95_ms"])):.1f}" r="8" fill="none" '
                       f'stroke="#b3261e" stroke-width="2"><title>missed at {r["users"]:g} users</title></circle>')
    for i, (key, label, colour) in enumerate(SERIES):
        series = sorted((r["users"], float(r[key])) for r in pts if r.get(key) is not None)
        if not series:
            continue
        path = " ".join(f"{x(u):.1f},{y(v):.1f}" for u, v in series)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for u, v in series:
            out.append(f'<circle cx="{x(u):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                       f'<title>{escape(label)} at {u:g} users: {v:g} ms</title></circle>')
        ly = top + 14 + i * 18
        out.append(f'<line x1="{left + pw + 8}" x2="{left + pw + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 32}" y="{ly + 4}" font-size="12" fill="#111">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


GROUP_COLOURS = {"nginx": "#2b7bb9", "app": "#d9822b", "worker": "#7a4fb3", "postgres": "#1f7a3a", "redis": "#b83232",
                 "keycloak": "#6b6b6b", "model": "#c9a227"}


def layers_svg(section: dict[str, Any], width: int = 720, bar_h: int = 18) -> str:
    """Horizontal bars, one per path and operation: CPU milliseconds per request stacked by process group,
    with requests/s written at the end, so both "what it costs" and "what it serves" read off one chart."""
    groups = [g for g in section.get("groups", []) if g in GROUP_COLOURS]
    bars = [(op, r) for op in ("read", "write") for r in section.get(op, [])]
    if not bars or not groups:
        return ""
    left, right, top, gap = 250, 110, 28, 8
    pw = width - left - right
    xmax = _nice_max(max(float(r.get("cpu_ms_total") or 0) for _, r in bars))
    height = top + len(bars) * (bar_h + gap) + 40
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-labelledby="layers-title"><title id="layers-title">CPU per request by layer path and '
            f'process group</title>')]
    for k in range(6):
        xv = left + pw * k / 5
        out.append(f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="{top - 4}" y2="{height - 36}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{xv:.1f}" y="{height - 22}" font-size="11" text-anchor="middle" fill="#333">'
                   f'{xmax * k / 5:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="12" text-anchor="middle" fill="#111">'
               f'CPU ms per request (all process groups)</text>')
    for i, g in enumerate(groups):
        lx = left + i * 70
        out.append(f'<rect x="{lx}" y="4" width="12" height="12" fill="{GROUP_COLOURS[g]}"/>')
        out.append(f'<text x="{lx + 16}" y="14" font-size="11" fill="#111">{escape(g)}</text>')
    for n, (op, r) in enumerate(bars):
        y = top + n * (bar_h + gap)
        out.append(f'<text x="{left - 6}" y="{y + bar_h - 5}" font-size="11" text-anchor="end" fill="#111">'
                   f'{escape(op)}: {escape(str(r["path"]))}</text>')
        x = float(left)
        for g in groups:
            v = float(r["cpu_ms"].get(g) or 0)
            w = v / xmax * pw
            if w > 0:
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{GROUP_COLOURS[g]}">'
                           f'<title>{escape(op)} {escape(str(r["path"]))}: {escape(g)} {v:g} ms/request</title></rect>')
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + bar_h - 5}" font-size="11" fill="#333">{r["rps"]:g} req/s</text>')
    out.append("</svg>")
    return "\n".join(out)
