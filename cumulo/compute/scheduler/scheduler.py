"""The pipeline: filters in order (counting what each removed), then weighers, best host first."""

from __future__ import annotations

from dataclasses import dataclass, field

from cumulo.compute.scheduler import filters as f
from cumulo.compute.scheduler import weighers as w
from cumulo.compute.scheduler.state import HostState, RequestSpec
from cumulo.core.http.faults import Fault


class NoValidHost(Fault):
    code, kind = 500, "NoValidHost"

    def __init__(self, hosts: int, removed: list[tuple[str, int]]) -> None:
        self.hosts, self.removed = hosts, removed
        detail = ", ".join(f"{name} removed {count}" for name, count in removed if count)
        super().__init__(f"No valid host was found. {hosts} hosts" + (f"; {detail}." if detail else "."))

    @property
    def public_message(self) -> str:
        """What a non-admin sees: the first sentence only."""
        return "No valid host was found."


@dataclass
class Scheduler:
    filter_names: list[str] = field(default_factory=lambda: list(f.DEFAULT))
    multipliers: dict[str, float] = field(default_factory=lambda: dict(w.SPREAD))

    def __post_init__(self) -> None:
        unknown = [n for n in self.filter_names if n not in f.ALL] + [n for n in self.multipliers if n not in w.ALL]
        if unknown:
            raise ValueError(f"unknown scheduler filters or weighers: {', '.join(unknown)}")
        self.filters = [f.ALL[n]() for n in self.filter_names]
        self.weighers = [(w.ALL[n](), m) for n, m in self.multipliers.items()]

    def select(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        """The hosts that pass every filter, best first; NoValidHost when none does."""
        total = len(hosts)
        if spec.force_hosts:
            hosts = [h for h in hosts if h.host in spec.force_hosts]
        hosts = [h for h in hosts if h.host not in spec.ignore_hosts]
        removed: list[tuple[str, int]] = []
        for flt in self.filters:
            kept = [h for h in hosts if flt.passes(h, spec)]
            removed.append((flt.name, len(hosts) - len(kept)))
            hosts = kept
        if not hosts:
            raise NoValidHost(total, removed)
        return self.weigh(hosts, spec)

    def weigh(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        scores = {h.host: 0.0 for h in hosts}
        for weigher, multiplier in self.weighers:
            if not multiplier:
                continue
            values = {h.host: weigher.value(h, spec) for h in hosts}
            low, high = min(values.values()), max(values.values())
            span = high - low
            for name, value in values.items():
                scores[name] += multiplier * ((value - low) / span if span else 0.0)
        return sorted(hosts, key=lambda h: (-scores[h.host], h.host))
