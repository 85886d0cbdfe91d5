"""bench/chart.py: the benchmark results drawn as one panel per workload."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def load_chart() -> Any:
    spec = importlib.util.spec_from_file_location("bench_chart", ROOT / "bench" / "chart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(workload: str, server: str, metric: str, median: float, ratio: float,
        higher: bool = True) -> dict[str, Any]:
    return {"workload": workload, "server": server, "metric": metric, "label": metric,
            "higher_is_better": higher, "median": median, "ratio_vs_twisted": ratio}


def test_one_panel_per_workload_bars_as_times_better() -> None:
    """Each workload's first metric only; a less-is-better metric drawn inverted, so a
    longer bar is better everywhere; names are escaped."""
    doc = {"meta": {"date": "2026-11-28T12:00:00", "machine": "test"}, "results": [
        row("echo", "netlab", "msgs", 200.0, 2.0),
        row("echo", "twisted", "msgs", 100.0, 1.0),
        row("echo", "netlab", "p99", 5.0, 0.5, higher=False),
        row("start", "netlab", "seconds", 0.4, 2.0, higher=False),
        row("start", "twisted", "seconds", 0.2, 1.0, higher=False),
        row("start", "<b>x</b>", "seconds", 0.1, 0.5, higher=False),
    ]}
    root = ElementTree.fromstring(load_chart().chart_svg(doc))
    panels = root.findall(f"{SVG}g")
    assert [p.get("data-workload") for p in panels] == ["echo", "start"]
    echo, start = ({b.get("data-server"): b for b in p.findall(f"{SVG}rect")} for p in panels)
    assert list(echo) == ["netlab", "twisted"]  # p99 is not echo's headline
    assert float(echo["netlab"].get("width", 0)) == 2 * float(echo["twisted"].get("width", 0))
    assert float(start["netlab"].get("data-advantage", 0)) == 0.5
    assert float(start["<b>x</b>"].get("data-advantage", 0)) == 2.0
    assert echo["netlab"].get("fill") != echo["twisted"].get("fill")


def test_the_committed_results_draw() -> None:
    """bench/results/latest.svg is the drawing of latest.json beside it."""
    chart = load_chart()
    results = ROOT / "bench" / "results"
    doc = json.loads((results / "latest.json").read_text())
    assert (results / "latest.svg").read_text() == chart.chart_svg(doc)
