"""
bench/run.py's measuring parts, with real processes: CPU time summed over
a process tree, set-ups of several processes left unpinned, and the chat
fan-out load generator across two netlab daemons sharing a room through a
real redis-server (and failing when they do not share it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from helpers import require_tool

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# A child that starts a grandchild burning 0.3 s of CPU time, which says
# "burnt" and then waits for its standard input to close.
BURNER = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", '''
import sys, time
while time.process_time() < 0.3:
    pass
print("burnt", flush=True)
sys.stdin.read()
'''])
grandchild.wait()
"""


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """bench/run.py as a module (it imports chart.py from its own folder)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Its dataclasses look their module up while they are made.
        sys.modules["bench_run"] = module
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_run", None)
        sys.path.remove(str(BENCH))


def context(bench: Any, tmp_path: Path, **changes: Any) -> Any:
    """A run's context: this Python (it has netlab), short runs, no pinning."""
    fields = {"python": sys.executable, "bin_dir": tmp_path / "bin",
              "run_dir": tmp_path / "run", "server_cpu": None, "load_cpu": None,
              "seconds": 0.6, "warmup": 0.2, "repeats": 1, **changes}
    return bench.Context(**fields)


def server(bench: Any, name: str) -> Any:
    return next(s for s in bench.SERVERS if s.name == name)


def test_cpu_time_of_a_process_tree(bench: Any) -> None:
    """A grandchild's CPU time counts while it runs, and after its parent reaps it."""
    child = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "burnt\n"
        tree = bench.process_tree([child.pid])
        assert len(tree) == 2  # the child and its grandchild
        running = bench.tree_cpu_seconds([child.pid])
        assert running >= 0.3
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()


def test_workers_are_not_pinned_and_one_process_is(bench: Any, tmp_path: Path) -> None:
    """
    netlab-2w's parent and workers may run on every core (they used to
    inherit the server core's pinning, so both workers shared one core);
    a one-process server is pinned to the server core.
    """
    everywhere = os.sched_getaffinity(0)
    one = min(everywhere)
    ctx = context(bench, tmp_path, server_cpu=one)
    workload = next(w for w in bench.WORKLOADS if w.name == "tcp-pingpong-100")
    with bench.running(ctx, server(bench, "netlab-2w"), workload) as workers:
        tree = bench.process_tree(workers.processes["server"])
        assert len(tree) == 3  # the parent and two workers, ready
        assert {frozenset(os.sched_getaffinity(pid)) for pid in tree} == {frozenset(everywhere)}
    with bench.running(ctx, server(bench, "netlab"), workload) as alone:
        (pid,) = alone.processes["server"]
        assert os.sched_getaffinity(pid) == {one}


def chat_workload(bench: Any) -> Any:
    """The chat fan-out with 10 members, 3 of them sending: quick to join."""
    fifty = next(w for w in bench.CHAT_WORKLOADS if w.name == "chat-fanout-50")
    return dataclasses.replace(fifty, args=("10", "3", "8"))


def test_chat_fanout_across_two_daemons_on_redis(bench: Any, tmp_path: Path) -> None:
    """
    Members spread over two daemons hear every sender through Redis; the
    load generator's counts add up, and the costs of both daemons and of
    Redis are measured.
    """
    require_tool("gcc")
    require_tool("redis-server")
    ctx = context(bench, tmp_path, bin_dir=bench.build(tmp_path / "build"))
    workload = chat_workload(bench)
    with bench.running(ctx, server(bench, "netlab-2d"), workload) as setup:
        assert len(setup.ports) == 2 and len(setup.processes["server"]) == 2
        result = bench.load_once(ctx, workload, setup)
    assert result["ports"] == 2 and result["members"] == 10
    # Every counted line reached the 9 other members (some after counting
    # stopped, while the load generator read on).
    assert result["lines"] > 8 and result["undelivered"] == 0
    assert 0 < result["deliveries"] <= result["lines"] * 9
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["cpu_us_per_delivery"] > 0 and result["server_cores"] > 0
    assert result["redis_us_per_line"] >= 0 and "redis_cores" in result


def test_chat_fanout_fails_when_daemons_do_not_share_the_room(
    bench: Any, tmp_path: Path,
) -> None:
    """
    Two bare chats that know nothing of each other: the one sender and the
    probe (the last member) on the first, so lines flow, but the members on
    the second never hear the sender, and the run fails.
    """
    require_tool("gcc")
    ctx = context(bench, tmp_path, bin_dir=bench.build(tmp_path / "build"))
    workload = dataclasses.replace(chat_workload(bench), args=("9", "1", "8"))
    twisted = server(bench, "twisted")
    with ExitStack() as stack:
        apart = [stack.enter_context(bench.running(ctx, twisted, workload)) for _ in "ab"]
        setup = bench.Setup([s.ports[0] for s in apart], [], {})
        with pytest.raises(RuntimeError, match=r"member 1 \(port 2 of 2\) heard no counted "
                           r"line from sender\(s\) 0x1"):
            bench.load_once(ctx, workload, setup)
