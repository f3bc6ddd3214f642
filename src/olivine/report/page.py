"""The self-contained ``report.html``: summary, trade-off plot (inline SVG), sortable table, machine.

No external resource of any kind: the Content-Security-Policy forbids every fetch, so the page renders the
same offline. The script only sorts the table (state in the URL fragment, e.g. ``#sort=m:latency-avg,desc``)
and links plot points to table rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from importlib import resources

from olivine.report.footprint import CandidateRecord, Footprint, Metric, PlayoffRecord
from olivine.report.scatter import Scatter, format_number
from olivine.report.svg import render_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
#: CPU flags that decide whether int8 kernels are faster than fp32 (shown in bold).
INT8_FLAGS = ("vnni", "amx", "avx512")
NO_INT8_FLAGS = "none (no VNNI, AMX or AVX-512: int8 kernels gain little here)"


@dataclass(frozen=True)
class Column:
    key: str  # data-col, used in the URL fragment
    label: str
    cell: Callable[[CandidateRecord], tuple[str, str]]  # (text shown, sort value; "" sorts last)


def render_page(fp: Footprint, scatter: Scatter | None, source: str) -> str:
    title = f"Olivine search report: {fp.workflow_id}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">from <code>{escape(source)}</code></p>',
        _summary(fp),
        "<h2>Trade-off</h2>",
        _plot_section(scatter),
        "<h2>Candidates</h2>",
        '<p class="muted">Click a column to sort; hover a row or a point to find the other.</p>',
        _table(fp),
        "<h2>Machine</h2>",
        _machine(fp),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>\n{_asset('report.js')}</script>\n</body>\n</html>\n"
    )


def render_chart_page(scatter: Scatter, workflow_id: str) -> str:
    """The plot alone, as Olive's ``pareto_frontier_footprint_chart.html`` (with plot_pareto_frontier)."""
    title = f"Pareto frontier: {workflow_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<title>{escape(title)}</title>\n</head>\n<body>\n<h1 style="font-family:sans-serif">'
        f"{escape(title)}</h1>\n{render_svg(scatter)}\n</body>\n</html>\n"
    )


def _asset(name: str) -> str:
    return resources.files("olivine.report").joinpath(name).read_text(encoding="utf-8")


def _summary(fp: Footprint) -> str:
    counts: dict[str, int] = {}
    for record in fp.candidates:
        counts[record.status] = counts.get(record.status, 0) + 1
    meets = sum(1 for r in fp.candidates if r.meets_goals)
    search = fp.search
    facts = [f"{len(fp.candidates)} candidate(s)"]
    facts += [f"{n} {status}" for status, n in sorted(counts.items())]
    facts.append(f"{meets} meet the goals")
    facts.append(f"{len(fp.frontier)} on the frontier")
    if search is not None:
        facts.append(
            f"sampler {search.sampler or '-'}, order {search.execution_order or '-'}, seed {search.seed}"
        )
        if search.space_size is not None:
            facts.append(f"space of {search.space_size}")
    rows = ["<ul>", f"<li>{escape('; '.join(facts))}</li>"]
    for objective in fp.ranked_objectives():
        goal = objective.goal
        direction = "higher" if objective.higher_is_better else "lower"
        text = f"objective {objective.priority}: <b>{escape(objective.key)}</b> ({direction} is better)"
        if goal is not None:
            op = ">=" if objective.higher_is_better else "<="
            text += (
                f", goal {escape(goal.type)} {format_number(goal.value)}"
                f" &rarr; {op} {format_number(goal.resolved)}"
            )
        rows.append(f"<li>{text}</li>")
    rows.append("</ul>")
    best = fp.find(fp.best)
    if best is None:
        rows.append('<p class="best">No best model: no candidate meets every goal.</p>')
    else:
        rows.append(f'<p class="best">Best: <b>{escape(best.id)}</b> {escape(_chain_text(best))}</p>')
        rows.append(_best_metrics(fp, best))
    if fp.playoff is not None:
        rows.append(_playoff(fp.playoff))
    return "\n".join(rows)


def _playoff(playoff: PlayoffRecord) -> str:
    """One line: the finalists' playoff values on the objective it decided."""
    cells = []
    for cid in playoff.finalists:
        metric = playoff.metrics.get(cid, {}).get(playoff.objective)
        if metric is not None:
            cells.append(f"{escape(cid)} {_metric_text(metric)}")
    walk = f"; the walk's measurements alone gave {escape(playoff.walk_best)}" if playoff.walk_best else ""
    return (
        f'<p class="muted" id="playoff">Playoff: the finalists re-timed head to head in {playoff.rounds} '
        f"interleaved rounds on {escape(playoff.objective)}: {'; '.join(cells)}{walk}.</p>"
    )


def _best_metrics(fp: Footprint, best: CandidateRecord) -> str:
    base = fp.input
    items = []
    for key, metric in best.metrics.items():
        text = f"{escape(key)} = {_metric_text(metric)}"
        base_value = base.value(key) if base is not None else None
        if base_value and metric.value is not None:
            text += f" ({metric.value / base_value:.3g}x the input model's {format_number(base_value)})"
        items.append(f"<li>{text}</li>")
    return '<ul class="best-metrics">' + "".join(items) + "</ul>"


def _plot_section(scatter: Scatter | None) -> str:
    if scatter is None:
        return '<p id="no-plot">Nothing to plot: no record has a value for the ranked objectives.</p>'
    parts = [f'<figure id="figure">{render_svg(scatter)}</figure>']
    if scatter.left_out:
        listed = ", ".join(f"{escape(i)} ({escape(why)})" for i, why in scatter.left_out)
        parts.append(f'<p class="muted" id="not-plotted">Not plotted: {listed}.</p>')
    return "\n".join(parts)


def _metric_text(metric: Metric) -> str:
    text = format_number(metric.value)
    if metric.spread:
        text += f" ± {format_number(metric.spread)}"
    return text


def _chain_text(record: CandidateRecord) -> str:
    if not record.chain:
        return "input model"
    steps = " → ".join(f"{s.name} ({s.type})" for s in record.chain)
    point = ", ".join(f"{k}={json.dumps(v)}" for k, v in record.point.items())
    return f"{steps}" + (f"; {point}" if point else "")


def _flag(value: bool | None) -> tuple[str, str]:
    if value is None:
        return "-", ""
    return ("yes", "1") if value else ("no", "0")


def _columns(fp: Footprint) -> list[Column]:
    records = fp.records()
    dims = list(dict.fromkeys(k for r in records for k in r.point))
    metrics = list(
        dict.fromkeys([o.key for o in fp.ranked_objectives()] + [k for r in records for k in r.metrics])
    )

    def dim(name: str) -> Column:
        def cell(r: CandidateRecord) -> tuple[str, str]:
            if name not in r.point:
                return "", ""
            value = r.point[name]
            text = value if isinstance(value, str) else json.dumps(value)
            sort = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else text
            return text, sort

        return Column(f"p:{name}", name, cell)

    def metric(name: str) -> Column:
        def cell(r: CandidateRecord) -> tuple[str, str]:
            m = r.metrics.get(name)
            if m is None or m.value is None:
                return "", ""
            return _metric_text(m), repr(m.value) if math.isfinite(m.value) else ""

        return Column(f"m:{name}", name, cell)

    return [
        Column("index", "#", lambda r: (str(r.index), str(r.index))),
        Column("id", "id", lambda r: (r.id, r.id)),
        Column("status", "status", lambda r: (r.status, r.status)),
        Column("goals", "meets goals", lambda r: _flag(r.meets_goals)),
        Column("frontier", "frontier", lambda r: _flag(r.on_frontier or r.id in fp.frontier)),
        Column("best", "best", lambda r: _flag(r.is_best or r.id == fp.best)),
        *[dim(d) for d in dims],
        *[metric(m) for m in metrics],
        Column("chain", "pass chain", lambda r: (_chain_types(r), _chain_types(r))),
        Column("model", "model id", lambda r: ((r.model_id or "")[:12], r.model_id or "")),
        Column("error", "error", lambda r: (r.error or "", r.error or "")),
    ]


def _chain_types(record: CandidateRecord) -> str:
    return " → ".join(step.type for step in record.chain) if record.chain else "-"


def _table(fp: Footprint) -> str:
    columns = _columns(fp)
    head = "".join(
        f'<th data-col="{escape(c.key)}" aria-sort="none">'
        f'<button type="button">{escape(c.label)}</button></th>'
        for c in columns
    )
    rows = []
    for record in fp.records():
        classes: list[str] = [record.status]
        if record is fp.input:
            classes.append("input")
        if record.is_best or record.id == fp.best:
            classes.append("best")
        if record.on_frontier or record.id in fp.frontier:
            classes.append("frontier")
        cells = []
        for column in columns:
            text, sort = column.cell(record)
            title = f' title="{escape(record.error)}"' if column.key == "error" and record.error else ""
            cells.append(f'<td data-v="{escape(sort)}"{title}>{escape(_clip(text))}</td>')
        rows.append(
            f'<tr class="{" ".join(classes)}" data-id="{escape(record.id)}" data-index="{record.index}">'
            + "".join(cells)
            + "</tr>"
        )
    return (
        f'<div class="table-wrap"><table id="candidates"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>"
    )


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _machine(fp: Footprint) -> str:
    m = fp.machine
    flags = sorted(m.cpu_flags)
    int8 = [f for f in flags if any(tag in f for tag in INT8_FLAGS)]
    rendered = " ".join(
        f"<b>{escape(f)}</b>" if any(tag in f for tag in INT8_FLAGS) else escape(f) for f in flags
    )
    rows = [
        ("CPU", escape(m.cpu or "-")),
        ("cores", str(m.cores) if m.cores is not None else "-"),
        ("python", escape(m.python or "-")),
        (
            "int8 / AI flags",
            escape(", ".join(int8)) if int8 else NO_INT8_FLAGS,
        ),
        ("CPU flags", f'<span class="flags">{rendered or "-"}</span>'),
    ]
    libs = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(version)}</td></tr>"
        for name, version in sorted(m.libraries.items())
    )
    facts = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<table id="machine" class="facts">{facts}</table>\n'
        f'<table id="libraries" class="facts"><thead><tr><th>library</th><th>version</th></tr></thead>'
        f"<tbody>{libs}</tbody></table>"
    )
