"""A project's usage over a period, for billing: ``cumulo usage report``.

vCPU-hours, RAM MB-hours and local disk GB-hours of its servers, computed as Nova's
os-simple-tenant-usage computes them (a server counts from its launch to its deletion, stopped
or not: its resources stay claimed on its host) but with the flavor it had at each moment: a
resize counts at the old flavor until the resize was asked for and at the new one after (Nova's
placement claims the new flavor then), and a reverted resize goes back to the old flavor when the
revert ended.  ``running_hours`` is the part of that time the server was powered on (from its
stop/start, suspend/resume and shelve/unshelve actions).  Volume GB-hours from each volume's
life (created to deleted) at its size, floating-IP hours from each address's life, image
GB-hours from each image's life at its stored size.

What the tables cannot tell: a floating IP released before now is gone from the database (Neutron
deletes the row), so its hours are not counted; a volume extended during the period counts at its
size now for all of it; objects have no size history, so object storage is reported as the
bytes stored now, not as GB-hours.  GB are GiB, as Nova's local_gb.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Integer, column, func, select, table

from cumulo.core.db import UTCDateTime

GIB = 1 << 30
# instance actions after which a server is powered off, or on again
POWER_OFF = {"stop", "suspend", "shelve", "shelveOffload"}
POWER_ON = {"start", "resume", "unshelve"}


def _t(name: str, *cols: str | tuple[str, Any]) -> Any:
    return table(name, *(column(c) if isinstance(c, str) else column(c[0], c[1]) for c in cols))


def _hours(a: dt.datetime, b: dt.datetime) -> float:
    return max(0.0, (b - a).total_seconds() / 3600)


@dataclass
class Line:
    """One resource's usage in the period."""

    kind: str  # server, volume, floating_ip, image, object_storage
    id: str
    name: str = ""
    hours: float = 0.0
    running_hours: float = 0.0
    vcpu_hours: float = 0.0
    ram_mb_hours: float = 0.0
    disk_gb_hours: float = 0.0
    volume_gb_hours: float = 0.0
    floating_ip_hours: float = 0.0
    image_gb_hours: float = 0.0
    object_gb_now: float = 0.0


FIGURES = ("hours", "running_hours", "vcpu_hours", "ram_mb_hours", "disk_gb_hours", "volume_gb_hours",
           "floating_ip_hours", "image_gb_hours", "object_gb_now")


@dataclass
class Report:
    project_id: str
    start: dt.datetime
    end: dt.datetime
    lines: list[Line] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        """Each figure summed; ``hours`` and ``running_hours`` are the servers' (not the other resources')."""
        return {k: round(sum(getattr(line, k) for line in self.lines
                             if line.kind == "server" or k not in ("hours", "running_hours")), 4) for k in FIGURES}

    def as_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "totals": self.totals(), "resources": [{k: (round(v, 4) if isinstance(v, float) else v)
                                                        for k, v in asdict(line).items()} for line in self.lines]}

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["project_id", "start", "end", "kind", "id", "name", *FIGURES])
        for line in [*self.lines, Line("total", "", **self.totals())]:
            w.writerow([self.project_id, self.start.isoformat(), self.end.isoformat(), line.kind, line.id, line.name,
                        *(f"{getattr(line, k):.4f}" for k in FIGURES)])
        return out.getvalue()

    def text(self) -> str:
        t = self.totals()
        rows = [f"Usage of project {self.project_id} from {self.start.isoformat()} to {self.end.isoformat()} (UTC)",
                f"  vCPU-hours        {t['vcpu_hours']:14.2f}",
                f"  RAM MB-hours      {t['ram_mb_hours']:14.2f}",
                f"  disk GB-hours     {t['disk_gb_hours']:14.2f}",
                f"  server hours      {t['hours']:14.2f}  (powered on: {t['running_hours']:.2f})",
                f"  volume GB-hours   {t['volume_gb_hours']:14.2f}",
                f"  floating-IP hours {t['floating_ip_hours']:14.2f}",
                f"  image GB-hours    {t['image_gb_hours']:14.2f}",
                f"  objects now (GB)  {t['object_gb_now']:14.4f}  (no size history: not GB-hours)",
                "", f"{'kind':<12} {'id':<36} {'hours':>9} {'vCPU-h':>10} {'RAM MB-h':>12} {'disk GB-h':>10} "
                    f"{'vol GB-h':>10} {'FIP h':>8}"]
        for line in self.lines:
            rows.append(f"{line.kind:<12} {line.id:<36} {line.hours:9.2f} {line.vcpu_hours:10.2f} "
                        f"{line.ram_mb_hours:12.2f} {line.disk_gb_hours:10.2f} {line.volume_gb_hours:10.2f} "
                        f"{line.floating_ip_hours:8.2f}")
        return "\n".join(rows)


def _flavor(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


async def report(db: Any, project_id: str, start: dt.datetime, end: dt.datetime) -> Report:
    """The usage of ``project_id`` from ``start`` to ``end`` (naive UTC)."""
    if end <= start:
        raise ValueError("the period's end must come after its start")
    out = Report(project_id, start, end)
    async with db.reader() as s:
        async def rows(stmt: Any) -> list[Any]:
            return list((await s.execute(stmt)).all())

        sv = _t("compute_server", "id", "name", "project_id", "flavor", ("created_at", UTCDateTime),
                ("launched_at", UTCDateTime), ("terminated_at", UTCDateTime), ("deleted_at", UTCDateTime))
        servers = await rows(select(*sv.c).where(sv.c.project_id == project_id, sv.c.created_at <= end)
                             .order_by(sv.c.created_at, sv.c.id))
        servers = [r for r in servers if (r.terminated_at or r.deleted_at or end) >= start]
        ids = [r.id for r in servers]
        mig = _t("compute_migration", "server_id", "migration_type", "status", "old_flavor_id", "new_flavor_id",
                 ("created_at", UTCDateTime), ("updated_at", UTCDateTime))
        act = _t("compute_instance_action", "server_id", "action", ("start_time", UTCDateTime))
        fl = _t("compute_flavor", "id", ("vcpus", Integer), ("ram", Integer), ("disk", Integer),
                ("ephemeral", Integer))
        resizes: dict[str, list[Any]] = {}
        actions: dict[str, list[Any]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for m in await rows(select(*mig.c).where(mig.c.server_id.in_(chunk), mig.c.migration_type == "resize",
                                                     mig.c.status.in_(("finished", "confirmed", "confirming",
                                                                       "reverted", "reverting")))
                                .order_by(mig.c.created_at)):
                resizes.setdefault(m.server_id, []).append(m)
            for a in await rows(select(*act.c).where(act.c.server_id.in_(chunk),
                                                     act.c.action.in_(POWER_OFF | POWER_ON))
                                .order_by(act.c.start_time)):
                actions.setdefault(a.server_id, []).append(a)
        flavors = {r.id: {"vcpus": r.vcpus, "ram": r.ram, "disk": r.disk, "ephemeral": r.ephemeral or 0}
                   for r in await rows(select(*fl.c))}
        for r in servers:
            out.lines.append(_server_line(r, resizes.get(r.id, []), actions.get(r.id, []), flavors, start, end))

        vol = _t("volume_volume", "id", "name", "project_id", ("size", Integer), ("created_at", UTCDateTime),
                 ("deleted_at", UTCDateTime))
        for v in await rows(select(*vol.c).where(vol.c.project_id == project_id, vol.c.created_at <= end)
                            .order_by(vol.c.created_at, vol.c.id)):
            h = _hours(max(v.created_at, start), min(v.deleted_at or end, end))
            if h > 0 or v.deleted_at is None or v.deleted_at >= start:
                out.lines.append(Line("volume", v.id, v.name or "", hours=h, volume_gb_hours=h * v.size))

        fip = _t("network_floating_ip", "id", "project_id", "floating_ip_address", ("created_at", UTCDateTime))
        for f in await rows(select(*fip.c).where(fip.c.project_id == project_id, fip.c.created_at <= end)
                            .order_by(fip.c.created_at, fip.c.id)):
            h = _hours(max(f.created_at, start), end)
            out.lines.append(Line("floating_ip", f.id, f.floating_ip_address, hours=h, floating_ip_hours=h))

        im = _t("image_image", "id", "name", "owner", ("size", BigInteger), ("created_at", UTCDateTime),
                ("deleted_at", UTCDateTime))
        for i in await rows(select(*im.c).where(im.c.owner == project_id, im.c.created_at <= end)
                            .order_by(im.c.created_at, im.c.id)):
            if i.deleted_at is not None and i.deleted_at < start:
                continue
            h = _hours(max(i.created_at, start), min(i.deleted_at or end, end))
            out.lines.append(Line("image", i.id, i.name or "", hours=h, image_gb_hours=h * (i.size or 0) / GIB))

        try:
            co = _t("object_container", "account", ("bytes_used", BigInteger))
            stored = (await rows(select(func.sum(co.c.bytes_used)).where(co.c.account == f"AUTH_{project_id}")))
            if stored and stored[0][0]:
                out.lines.append(Line("object_storage", f"AUTH_{project_id}", object_gb_now=stored[0][0] / GIB))
        except Exception:  # noqa: BLE001  (a cloud without object storage has no such table)
            pass
    return out


def _server_line(r: Any, resizes: list[Any], actions: list[Any], flavors: dict[str, dict[str, Any]],
                 start: dt.datetime, end: dt.datetime) -> Line:
    current = _flavor(r.flavor)

    def spec(flavor_id: str | None) -> dict[str, Any]:
        if flavor_id is None or flavor_id == current.get("id"):
            return current
        return flavors.get(flavor_id, current)  # a flavor deleted since: the server's own snapshot

    # the flavor over time: [(from, flavor)], from the first resize's old flavor on
    changes: list[tuple[dt.datetime, dict[str, Any]]] = []
    for m in resizes:
        changes.append((m.created_at, spec(m.new_flavor_id)))
        if m.status in ("reverted", "reverting"):
            changes.append((m.updated_at, spec(m.old_flavor_id)))
    first = spec(resizes[0].old_flavor_id) if resizes else current
    began = r.launched_at or r.created_at
    ended = r.terminated_at or r.deleted_at or end
    lo, hi = max(began, start), min(ended, end)
    line = Line("server", r.id, r.name)
    if hi <= lo:
        return line
    # walk the period in pieces between flavor changes and power changes
    points = sorted({lo, hi, *(t for t, _ in changes if lo < t < hi), *(a.start_time for a in actions
                                                                         if lo < a.start_time < hi)})
    for a, b in zip(points, points[1:], strict=False):
        flavor = first
        for t, f in changes:
            if t <= a:
                flavor = f
        on = True
        for act in actions:
            if act.start_time <= a:
                on = act.action in POWER_ON
        h = _hours(a, b)
        line.hours += h
        line.running_hours += h if on else 0.0
        line.vcpu_hours += h * int(flavor.get("vcpus", 0))
        line.ram_mb_hours += h * int(flavor.get("ram", 0))
        line.disk_gb_hours += h * (int(flavor.get("disk", 0)) + int(flavor.get("ephemeral", 0) or 0))
    return line
