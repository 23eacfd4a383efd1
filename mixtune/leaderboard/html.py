"""The leaderboard as one self-contained HTML file: a sortable table, a detail row per model (its
mixture's weights, per-task scores, record ids) and an SVG chart of the curves.

Everything is inline (CSS, JS, SVG; no fonts, images or CDN), so the file can be mailed, attached
to a run or opened from disk on a machine without network. The data goes into the markup only,
escaped, never into a <script>: the script reads sort keys back from `data-v` attributes, so a
label like `</script>` has nowhere to break out. Without JS the table (and every detail row)
still reads; JS only adds sorting and folding. The chart is drawn here in Python, not in the page.
"""

from __future__ import annotations

import html
import math
from typing import Any

NONE = "—"  # shown for a null or missing number
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f",
           "#edc948", "#ff9da7", "#bab0ac")

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 2px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #777; font-size: 12px; margin: 0 0 16px; }
.ranking { font-size: 13px; margin: -8px 0 14px; max-width: 70em; }
.verdict { font-size: 14px; margin: -4px 0 12px; max-width: 70em; font-weight: 600; }
.wrap { overflow-x: auto; }
table.board { border-collapse: collapse; }
.board th, .board td { padding: 5px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
.board thead th { position: sticky; top: 0; background: #f6f6f6; border-bottom: 2px solid #ccc;
  text-align: left; white-space: nowrap; }
.board th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0;
  cursor: pointer; color: inherit; }
.nojs .board th button { cursor: default; }
.board th[aria-sort="ascending"] button::after { content: " \\25B2"; font-size: 10px; }
.board th[aria-sort="descending"] button::after { content: " \\25BC"; font-size: 10px; }
.board .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.board tr.row { cursor: pointer; } .board tr.row:hover { background: #f3f7fc; }
.board tr.open { background: #eef4fb; }
.null { color: #aaa; } .note { display: block; color: #888; font-size: 11px; }
.toggle { border: 0; background: none; cursor: pointer; font-size: 12px; color: #666;
  transition: transform .1s; } tr.open .toggle { transform: rotate(90deg); }
.nojs .toggle { display: none; }
.js tr.detail[hidden] { display: none; } .nojs tr.detail { display: table-row; }
tr.detail > td { background: #fafbfc; padding: 10px 16px 14px 40px; }
.detail-grid { display: flex; flex-wrap: wrap; gap: 12px 40px; }
.detail-grid h3 { font-size: 12px; text-transform: uppercase; color: #777; margin: 0 0 4px; }
.detail-grid table td, .detail-grid table th { padding: 1px 8px 1px 0; border: 0;
  font-weight: normal; text-align: left; }
.track { width: 140px; height: 10px; background: #e8e8e8; border-radius: 2px; margin-top: 5px; }
.bar { height: 100%; background: #4e79a7; border-radius: 2px; }
dl { margin: 0; display: grid; grid-template-columns: auto auto; gap: 1px 10px;
  align-items: baseline; }
dt { color: #777; } dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12px; }
.chart svg { max-width: 100%; height: auto; font-size: 11px; }
.chart .grid { stroke: #eee; } .chart .axis { stroke: #888; }
.legend { list-style: none; padding: 0; margin: 4px 0 0 64px; display: flex; flex-wrap: wrap;
  gap: 4px 18px; } .legend span { display: inline-block; width: 14px; height: 3px;
  vertical-align: middle; margin-right: 6px; }
"""

JS = """
(function () {
  var table = document.getElementById("board"), body = table.tBodies[0];
  table.tHead.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-col]");
    if (!button) return;
    var th = button.parentNode, col = +button.dataset.col, now = th.getAttribute("aria-sort");
    var dir = now === "none" ? button.dataset.first
      : (now === "ascending" ? "descending" : "ascending");
    table.tHead.querySelectorAll("th").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir);
    var numeric = th.classList.contains("num"), sign = dir === "descending" ? -1 : 1;
    var rows = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v, order = a.dataset.i - b.dataset.i;
      if (x === "" || y === "") return (x === "") - (y === "") || order;  // nulls last, both ways
      var c = numeric ? x - y : x.localeCompare(y, undefined, {numeric: true});
      return sign * c || order;
    });
    rows.forEach(function (r) {
      body.appendChild(r);
      body.appendChild(document.getElementById(r.dataset.detail));
    });
  });
  body.addEventListener("click", function (e) {
    var row = e.target.closest("tr.row");
    if (!row) return;
    var open = row.classList.toggle("open");
    document.getElementById(row.dataset.detail).hidden = !open;
    row.querySelector(".toggle").setAttribute("aria-expanded", String(open));
  });
})();
"""


def render_html(board: dict[str, Any]) -> str:
    """The whole page for `board` (title, generated, columns, rows, optional curves and
    ranking: {"sentence": what ranks the rows, and why}; see tests/leaderboard/test_html.py for a
    full example). Rows keep the given order: it is the ranking; sorting by a column is the
    reader's choice, in the page."""
    columns = board.get("columns", [])
    rows = board.get("rows", [])
    wmax = max((w for r in rows for w in _weights(r).values()), default=1.0) or 1.0
    head = "".join(_header(i + 1, col) for i, col in enumerate(columns))
    body = "".join(_row(i, row, columns, wmax) for i, row in enumerate(rows))
    title = _e(board.get("title", "leaderboard"))
    meta = f"{len(rows)} models" + (f" · generated {board['generated']}" if board.get("generated") else "")
    ranked = (board.get("ranking") or {}).get("sentence")  # what ranks the rows, and why
    ranked = f'<p class="ranking">{_e(ranked)}</p>\n' if ranked else ""
    # Each run's answer to "which mixture?", from its report: above the table that ranks them.
    ranked = "".join(f'<p class="verdict">Verdict, {_e(v)}</p>\n'
                     for v in board.get("verdicts") or []) + ranked
    return f"""<!DOCTYPE html>
<html lang="en" class="nojs"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<script>document.documentElement.className = "js";</script>
<style>{CSS}</style></head>
<body><h1>{title}</h1><p class="meta">{_e(meta)}</p>
{ranked}<div class="wrap"><table class="board" id="board">
<thead><tr><th scope="col" aria-sort="none"><span hidden>details</span></th>{head}</tr></thead>
<tbody>{body}</tbody></table></div>
{_chart(board.get("curves"))}
<script>{JS}</script></body></html>
"""


def _e(value: object) -> str:
    """Every string from the data goes through here: text and attribute values alike."""
    return html.escape(str(value), quote=True)


def _header(index: int, col: dict[str, Any]) -> str:
    """A header whose button sorts by the column; the first click puts the best first."""
    numeric = col.get("kind") in ("number", "int")
    first = "descending" if col.get("better") == "higher" else "ascending"
    hint = f' title="{_e(col["better"])} is better"' if col.get("better") else ""
    cls = ' class="num"' if numeric else ""
    return (f'<th scope="col" aria-sort="none"{cls}>'
            f'<button type="button" data-col="{index}" data-first="{first}"{hint}>'
            f'{_e(col.get("label", col["key"]))}</button></th>')


def _row(i: int, row: dict[str, Any], columns: list[dict[str, Any]], wmax: float) -> str:
    """One model: its cells, then its detail row (hidden until the row is clicked)."""
    values, notes, weights = row.get("values", {}), row.get("note") or {}, _weights(row)
    tip = "\n".join(f"{d}: {w:.3f}" for d, w in weights.items())
    tip_key = "mixture" if any(c["key"] == "mixture" for c in columns) else None
    cells = "".join(_cell(c, values.get(c["key"]), notes.get(c["key"]),
                          tip if c["key"] == tip_key else "") for c in columns)
    detail = f"detail-{i}"
    return (f'<tr class="row" data-i="{i}" data-id="{_e(row.get("id", i))}" data-detail="{detail}">'
            f'<td><button type="button" class="toggle" aria-expanded="false" '
            f'aria-controls="{detail}" aria-label="details">&#9654;</button></td>{cells}</tr>'
            f'<tr class="detail" id="{detail}" hidden><td colspan="{len(columns) + 1}">'
            f'{_detail(row, weights, wmax)}</td></tr>')


def _cell(col: dict[str, Any], value: Any, note: Any, tip: str) -> str:
    """A cell: its text, its sort key in data-v ('' = null, sorted last), tooltip and note."""
    tips = [tip] if tip else []
    if col.get("kind") in ("number", "int"):
        mean, std, n = _stat(value)
        text = _fmt_stat(mean, std, col)
        key = "" if mean is None else repr(mean)
        classes = "num" + (" null" if mean is None else "")
        if n is not None:
            tips.append(f"mean ± std over n = {n}")
    else:
        text = key = "" if value is None else str(value)
        classes = "null" if value is None else ""
        text = text or NONE
    title = f' title="{_e(chr(10).join(tips))}"' if tips else ""
    small = f'<small class="note">{_e(note)}</small>' if note else ""
    return f'<td class="{classes}" data-v="{_e(key)}"{title}>{_e(text)}{small}</td>'


def _detail(row: dict[str, Any], weights: dict[str, float], wmax: float) -> str:
    """Weights as bars (one scale for the whole board, so rows compare), tasks, record ids."""
    parts = []
    if weights:
        bars = "".join(f'<tr><th>{_e(d)}</th><td><div class="track"><div class="bar" '
                       f'style="width:{100 * w / wmax:.1f}%"></div></div></td>'
                       f'<td class="num">{w:.3f}</td></tr>' for d, w in weights.items())
        parts.append(f'<section class="weights"><h3>weights</h3><table>{bars}</table></section>')
    tasks = row.get("tasks") or {}
    if tasks:
        lines = "".join(f'<tr><th>{_e(t)}</th><td class="num">'
                        f'{_e(_fmt_stat(*_stat(v)[:2], {"digits": 4}))}</td></tr>'
                        for t, v in sorted(tasks.items()))
        parts.append(f'<section class="tasks"><h3>tasks</h3><table>{lines}</table></section>')
    links = row.get("links") or {}
    if links:
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in links.items())
        parts.append(f'<section class="links"><h3>records</h3><dl>{items}</dl></section>')
    return f'<div class="detail-grid">{"".join(parts) or "no details"}</div>'


def _weights(row: dict[str, Any]) -> dict[str, float]:
    """The row's domain weights that are numbers, in the given (domain) order."""
    out = {str(d): _finite(w) for d, w in (row.get("weights") or {}).items()}
    return {d: w for d, w in out.items() if w is not None}


def _finite(x: Any) -> float | None:
    """A usable number or None: bools, strings, NaN and infinities are not numbers to show."""
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def _stat(value: Any) -> tuple[float | None, float | None, int | None]:
    """(mean, std, n) of a number cell, which is a number, null, or {mean, std, n}."""
    if isinstance(value, dict):
        n = value.get("n")
        return _finite(value.get("mean")), _finite(value.get("std")), n if isinstance(n, int) else None
    return _finite(value), None, None


def _fmt_stat(mean: float | None, std: float | None, col: dict[str, Any]) -> str:
    """'0.1200 ± 0.0100', '0.1200', '1,638,400' (kind int) or '—'."""
    if mean is None:
        return NONE
    digits = 0 if col.get("kind") == "int" else int(col.get("digits", 4))
    sep = "," if col.get("kind") == "int" else ""
    return f"{mean:{sep}.{digits}f}" + ("" if std is None else f" ± {std:{sep}.{digits}f}")


def _chart(curves: dict[str, Any] | None) -> str:
    """An SVG line chart of the curves' series, the legend below it (never over the lines);
    '' when there is nothing to draw."""
    series = []
    for s in (curves or {}).get("series") or []:
        points = sorted((x, y) for x, y in ((_finite(p[0]), _finite(p[1])) for p in s.get("points", []))
                        if x is not None and y is not None)
        if points:
            series.append((str(s.get("label", "")), points))
    if not series:
        return ""
    metric, xname = str(curves.get("metric", "")), str(curves.get("x", ""))
    xt = _ticks([x for _, ps in series for x, _ in ps])
    yt = _ticks([y for _, ps in series for _, y in ps])
    w, h, left, right, top, bottom = 720, 320, 64, 16, 12, 44

    def px(x: float) -> float:
        return left + (x - xt[0]) / (xt[-1] - xt[0]) * (w - left - right)

    def py(y: float) -> float:
        return h - bottom - (y - yt[0]) / (yt[-1] - yt[0]) * (h - top - bottom)

    out = [f'<line class="grid" x1="{left}" x2="{w - right}" y1="{py(y):.1f}" y2="{py(y):.1f}"/>'
           f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_short(y)}</text>' for y in yt]
    out += [f'<text x="{px(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{_short(x)}</text>'
            for x in xt]
    out.append(f'<path class="axis" fill="none" d="M{left} {top}V{h - bottom}H{w - right}"/>'
               f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">{_e(xname)}</text>'
               f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" '
               f'text-anchor="middle">{_e(metric)}</text>')
    legend = []
    for k, (label, points) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        xy = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{xy}"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                f'<title>{_e(label)}: {_short(x)}, {y:.4g}</title></circle>' for x, y in points]
        legend.append(f'<li><span style="background:{colour}"></span>{_e(label)}</li>')
    name = f"{metric} vs {xname}" if xname else metric
    return (f'<figure class="chart"><h2>{_e(name)}</h2><svg viewBox="0 0 {w} {h}" width="{w}" '
            f'height="{h}" role="img" aria-label="{_e(name)}">{"".join(out)}</svg>'
            f'<ul class="legend">{"".join(legend)}</ul></figure>')


def _ticks(values: list[float], count: int = 5) -> list[float]:
    """About `count` round ticks (steps of 1, 2, 2.5 or 5 × 10^k) covering the values; the
    first and last are the axis' ends, so every point lands inside the plot."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _short(x: float) -> str:
    """A tick label: 409.6k, 1.5M, 2B for token counts, %g for the rest."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:g}{suffix}"
    return f"{x:g}"
