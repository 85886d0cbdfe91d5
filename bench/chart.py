"""
The benchmark results as a picture: one panel per workload, one bar per
server, each bar how many times better than bare Twisted the server did on
the workload's headline metric (its first: messages/s, MB/s, requests/s,
seconds to READY, bytes per idle connection, ...).  For a metric where less
is better the bar is bare Twisted's value over the server's, so a longer bar
is better everywhere and the dashed line at 1 is bare Twisted.

    python3 bench/chart.py [results/latest.json [results/latest.svg]]

bench/run.py writes latest.svg beside latest.md after every run.  Plain SVG,
no library: it has to render on GitHub, in a browser and in the README.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

WIDTH = 760
LABEL_WIDTH = 120
BAR_WIDTH = 420
ROW = 22
PANEL_GAP = 18
TITLE = 22
NETLAB = "#1f6f8b"
OTHER = "#a7b1b7"


def headline(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each workload's rows of its first metric, workloads in the order they ran."""
    chosen: dict[str, str] = {}
    panels: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        metric = chosen.setdefault(row["workload"], row["metric"])
        if row["metric"] == metric and row.get("ratio_vs_twisted"):
            panels.setdefault(row["workload"], []).append(row)
    return panels


def advantage(row: dict[str, Any]) -> float:
    """Times better than bare Twisted: the ratio, or its inverse where less is better."""
    ratio = float(row["ratio_vs_twisted"])
    return ratio if row["higher_is_better"] else 1.0 / ratio


def figure(value: float) -> str:
    """A median as the table writes it: thousands separated, three figures below 1000."""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def chart_svg(doc: dict[str, Any]) -> str:
    """The SVG text for a results document (latest.json)."""
    panels = headline(doc["results"])
    parts: list[str] = []
    y = 34
    for workload, rows in panels.items():
        first = rows[0]
        sense = (
            "" if first["higher_is_better"]
            else ", less is better: shown as Twisted's / the server's"
        )
        parts.append(f'<g class="workload" data-workload="{escape(workload)}">')
        parts.append(
            f'<text class="title" x="0" y="{y + 15}">{escape(workload)}: '
            f"{escape(first['label'])}{escape(sense)}</text>"
        )
        y += TITLE
        scale = BAR_WIDTH / max(max(advantage(r) for r in rows), 1.0)
        one = LABEL_WIDTH + scale
        # The line at 1 (bare Twisted) first, under the bars and their figures.
        parts.append(
            f'<line x1="{one:.1f}" y1="{y}" x2="{one:.1f}" y2="{y + ROW * len(rows)}" '
            'stroke="#333" stroke-dasharray="3,3"/>'
        )
        for row in rows:
            better = advantage(row)
            width = max(1.0, better * scale)
            colour = NETLAB if row["server"] == "netlab" else OTHER
            parts.append(
                f'<text class="server" x="{LABEL_WIDTH - 8}" y="{y + 15}" '
                f'text-anchor="end">{escape(row["server"])}</text>'
                f'<rect class="bar" data-server="{escape(row["server"])}" '
                f'data-advantage="{better:.4f}" x="{LABEL_WIDTH}" y="{y + 3}" '
                f'width="{width:.1f}" height="{ROW - 6}" fill="{colour}"/>'
                f'<text class="value" x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 15}">'
                f"{better:.2f}× ({escape(figure(float(row['median'])))})</text>"  # noqa: RUF001
            )
            y += ROW
        parts.append("</g>")
        y += PANEL_GAP
    meta = doc.get("meta", {})
    heading = (
        f"netlab vs reference servers, × bare Twisted (longer is better); "  # noqa: RUF001
        f"{meta.get('date', '')[:10]}, {meta.get('machine', '')}"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
        f'viewBox="0 0 {WIDTH} {y}" font-family="sans-serif" font-size="12">'
        '<style>.title{font-weight:bold}.value{fill:#333}</style>'
        f'<rect width="{WIDTH}" height="{y}" fill="#fff"/>'
        f'<text class="heading" x="0" y="16">{escape(heading)}</text>'
        + "".join(parts)
        + "</svg>\n"
    )


def write_chart(results: Path, target: Path) -> None:
    """Read the results JSON at C{results}, write its chart to C{target}."""
    target.write_text(chart_svg(json.loads(results.read_text())))


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else RESULTS / "latest.json"
    target = Path(argv[1]) if len(argv) > 1 else results.with_suffix(".svg")
    write_chart(results, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
