"""
The counters of a daemon that runs as several worker processes: each
worker's own, and the whole daemon's, summed.

Each worker counts in its own L{EventLog}; every second it sends those
counters to the parent, which sends every worker the table of all of them
(see L{netlab.app.workers}).  A worker that answers C{/metrics} or the
dashboard reads its own counters live and the others' as of their last
report: at most a second or so old.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from netlab.core.events import EventLog, ServiceCounters

# What a worker's counters travel as: {service: {field: int, "extra": {name: int}}}.
CountersState = dict[str, dict[str, Any]]


def counters_state(counters: Mapping[str, ServiceCounters]) -> CountersState:
    """C{counters} as plain data, for a JSON line."""
    return {service: dataclasses.asdict(c) for service, c in counters.items()}


def counters_from_state(state: Mapping[str, Mapping[str, Any]]) -> dict[str, ServiceCounters]:
    """L{counters_state} read back; unknown fields (a newer worker's) are left out."""
    known = {f.name for f in dataclasses.fields(ServiceCounters)}
    counters = {}
    for service, values in state.items():
        fields = {k: v for k, v in values.items() if k in known}
        fields["extra"] = dict(fields.get("extra") or {})
        counters[service] = ServiceCounters(**fields)
    return counters


def summed(tables: Iterable[Mapping[str, ServiceCounters]]) -> dict[str, ServiceCounters]:
    """Every table's counters added up, service by service."""
    total: dict[str, ServiceCounters] = {}
    for table in tables:
        for service, counters in table.items():
            into = total.setdefault(service, ServiceCounters())
            for f in dataclasses.fields(ServiceCounters):
                if f.name != "extra":
                    setattr(into, f.name, getattr(into, f.name) + getattr(counters, f.name))
            for name, count in counters.extra.items():
                into.extra[name] = into.extra.get(name, 0) + count
    return total


@dataclasses.dataclass
class WorkerTable:
    """
    One worker's view of the whole daemon's counters.

    @ivar index: this worker's number (0 to count - 1).
    @ivar pid: this worker's process id.
    @ivar events: this worker's event log, whose counters are read live.
    @ivar others: the other workers' counters as of their last report, by
        number, with their process ids in C{pids}.
    """

    index: int
    pid: int
    events: EventLog
    others: dict[int, dict[str, ServiceCounters]] = dataclasses.field(default_factory=dict)
    pids: dict[int, int] = dataclasses.field(default_factory=dict)

    def update(self, table: Mapping[str, Mapping[str, Any]]) -> None:
        """
        Take the parent's table, C{{"1": {"pid": 4242, "counters": state}}}:
        a worker missing from it (dead, not yet reported) drops out.
        """
        self.others, self.pids = {}, {}
        for key, entry in table.items():
            index = int(key)
            if index == self.index:
                continue
            self.others[index] = counters_from_state(entry.get("counters", {}))
            self.pids[index] = int(entry.get("pid", 0))

    def by_worker(self) -> dict[int, tuple[int, dict[str, ServiceCounters]]]:
        """Every worker's C{(pid, counters)} by number, this one's live."""
        workers = {i: (self.pids.get(i, 0), c) for i, c in self.others.items()}
        workers[self.index] = (self.pid, dict(self.events.counters))
        return dict(sorted(workers.items()))

    def total(self) -> dict[str, ServiceCounters]:
        """The whole daemon's counters: every worker's, summed."""
        return summed(counters for _, counters in self.by_worker().values())

    def snapshot(self) -> dict[str, Any]:
        """
        The whole daemon's counters and each worker's, as plain data, each
        as L{ServiceCounters.snapshot} makes them.  (The dashboard reads
        L{total} and L{by_worker}; nothing in the daemon calls this yet.)
        """
        return {
            "worker": self.index,
            "total": {s: c.snapshot() for s, c in sorted(self.total().items())},
            "workers": [
                {
                    "worker": index,
                    "pid": pid,
                    "counters": {s: c.snapshot() for s, c in sorted(counters.items())},
                }
                for index, (pid, counters) in self.by_worker().items()
            ],
        }


__all__ = ["WorkerTable", "counters_from_state", "counters_state", "summed"]
