"""Cloud-level gauges on the leader's operator ``/metrics``, named as openstack-exporter names them.

Grafana dashboards and alert rules written for `openstack-exporter
<https://github.com/openstack-exporter/openstack-exporter>`_ (``openstack_nova_total_vms``,
``openstack_nova_server_status{...}``, ``openstack_nova_agent_state{...}``,
``openstack_neutron_floating_ips``, ``openstack_cinder_volume_status{...}``,
``openstack_identity_projects``, ``openstack_placement_resource_usage{...}``, ...) work on Cumulo's
operator port unchanged: same names, same labels, same values (a server's status is the exporter's
status number, an agent's state 1 up / 0 down).  docs/monitoring/README.md lists every series.

The figures come from the database, not from the APIs: a task on the leader (the holder of the
leader lease, so a cloud of several controllers exports them once) runs a few aggregate queries
every ``interval`` seconds and a scrape serves the last result, so a scrape costs no query at all.
``openstack_<service>_up`` is 1 when that service's queries answered at the last refresh, 0 if
not.  Per-resource series (one per server, volume, image, floating IP) stop at ``MAX_SERIES`` of
each kind, so a huge cloud cannot blow up Prometheus; the counts stay exact.

Per-instance metering (``ceilometer_*``, Ceilometer's meter names and units) comes from each
compute node's diagnostics (QMP and the taps), fetched over the bus every ``meter_interval``
seconds for the running servers (``MAX_METERED`` at most), as Ceilometer's Prometheus publisher
shapes them: the meter's name with ``_`` for ``.``, labels ``resource_id`` and ``project_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import BigInteger, Boolean, Float, Integer, column, func, select, table

from cumulo.core.db import UTCDateTime, utcnow

LOG = logging.getLogger(__name__)
MAX_SERIES = 5000  # per-resource series of one kind (servers, volumes, images, floating IPs)
MAX_METERED = 2000  # servers whose meters one round fetches
MIB, GIB = 1 << 20, 1 << 30

# openstack-exporter's numbers for a status (exporters/nova.go knownServerStatuses, cinder.go knownVolumeStatuses)
SERVER_STATUS = {s: i for i, s in enumerate((
    "ACTIVE", "BUILD", "BUILD(spawning)", "DELETED", "ERROR", "HARD_REBOOT", "PASSWORD", "REBOOT", "REBUILD",
    "RESCUE", "RESIZE", "SHUTOFF", "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE", "MIGRATING", "PAUSED",
    "REVERT_RESIZE", "SHELVED", "SHELVED_OFFLOADED", "SOFT_DELETED"))}
VOLUME_STATUS = {s: i for i, s in enumerate((
    "creating", "available", "reserved", "attaching", "detaching", "in-use", "maintenance", "deleting",
    "awaiting-transfer", "error", "error_deleting", "backing-up", "restoring-backup", "error_backing-up",
    "error_restoring", "error_extending", "downloading", "uploading", "retyping", "extending"))}
# Nova's mapping of vm_state and task_state to the status the API shows (as cumulo.compute.servers.status)
VM_STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED", "stopped": "SHUTOFF",
             "paused": "PAUSED", "suspended": "SUSPENDED", "resized": "VERIFY_RESIZE", "soft-delete": "SOFT_DELETED",
             "shelved": "SHELVED", "shelved_offloaded": "SHELVED_OFFLOADED", "rescued": "RESCUE"}
TASK_STATUS = {"rebuilding": "REBUILD", "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_reverting": "REVERT_RESIZE", "migrating": "MIGRATING", "reboot_started": "REBOOT",
               "reboot_started_hard": "HARD_REBOOT"}
# Nova's default quotas, where no limit is registered in identity (unified limits)
DEFAULT_LIMITS = {"servers": 10, "class:VCPU": 20, "class:MEMORY_MB": 51200}


def server_status(vm_state: str, task_state: str | None) -> str:
    if task_state in TASK_STATUS and vm_state in ("active", "stopped", "error", "resized", "paused"):
        return TASK_STATUS[task_state]
    return VM_STATUS.get(vm_state, (vm_state or "unknown").upper())


def host_id(project_id: str, host: str | None) -> str:
    """Nova's hostId: a hash of the project and the host, so users can tell co-located servers apart."""
    return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""


def _t(name: str, *cols: str | tuple[str, Any]) -> Any:
    return table(name, *(column(c) if isinstance(c, str) else column(c[0], c[1]) for c in cols))


def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class CloudExporter:
    """The cloud-level series, refreshed by a task and rendered to Prometheus text once per refresh:
    ``wrap(app)`` appends them to the operator app's ``/metrics``, so a scrape costs a copy of bytes."""

    def __init__(self, db: Any, bus: Any = None, services: list[str] | tuple[str, ...] = (),
                 interval: float = 30.0, meter_interval: float = 60.0,
                 held: Callable[[], bool] = lambda: True, compute_down_time: int = 60,
                 volume_down_time: int = 60, network_down_time: int = 75, default_zone: str = "nova",
                 lease_grace: float = 60.0, stuck_after: float = 3600.0,
                 disks: dict[str, str] | None = None) -> None:
        self.db, self.bus, self.services = db, bus, set(services)
        self.interval, self.meter_interval, self.held = interval, meter_interval, held
        self.down = {"compute": compute_down_time, "volume": volume_down_time, "network": network_down_time}
        self.default_zone = default_zone
        self.lease_grace, self.stuck_after, self.disks = lease_grace, stuck_after, dict(disks or {})
        self.families: list[Metric] = []
        self.meters: list[Metric] = []
        self.rendered = b""  # the gauges' text
        self.rendered_meters = b""  # the meters' text
        self.refreshed_at = 0.0
        self.refresh_seconds = 0.0
        self.meter_seconds = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def collect(self) -> Iterator[Metric]:
        """Every family now (for a registry of one's own: the tests, a bench)."""
        yield from self.families
        yield from self.meters

    def text(self) -> bytes:
        """What ``/metrics`` gets appended: the kept renderings and the exporter's own health."""
        if not self.held():
            return b""
        age = time.time() - self.refreshed_at if self.refreshed_at else -1
        own = [("cumulo_exporter_age_seconds", "Seconds since the cloud-level gauges were computed", age),
               ("cumulo_exporter_refresh_seconds", "Seconds the last refresh of the cloud-level gauges took",
                self.refresh_seconds)]
        if self.rendered_meters:
            own.append(("cumulo_exporter_meter_seconds", "Seconds the last round of per-instance meters took",
                        self.meter_seconds))
        tail = "".join(f"# HELP {n} {h}\n# TYPE {n} gauge\n{n} {v!r}\n" for n, h, v in own)
        return self.rendered + self.rendered_meters + tail.encode()

    def wrap(self, app: Any) -> Any:
        """The operator app with these series after its own on ``GET /metrics``."""
        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] != "/metrics":
                await app(scope, receive, send)
                return
            start: dict[str, Any] = {}
            chunks: list[bytes] = []

            async def keep(message: Any) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                elif message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await app(scope, receive, keep)
            body = b"".join(chunks)
            if start.get("status") == 200:
                body += self.text()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({"type": "http.response.start", "status": start.get("status", 500),
                        "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        return asgi

    # -- running ------------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(self.interval, self.refresh), name="exporter-gauges")]
        if self.bus is not None and "compute" in self.services and self.meter_interval > 0:
            self._tasks.append(loop.create_task(self._every(self.meter_interval, self.refresh_meters),
                                                name="exporter-meters"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _every(self, seconds: float, work: Callable[[], Any]) -> None:
        while True:
            if self.held():
                try:
                    await work()
                except Exception:  # noqa: BLE001  (the next round tries again)
                    LOG.exception("the cloud-level metrics could not be refreshed")
            await asyncio.sleep(seconds)

    async def refresh(self) -> None:
        started = time.perf_counter()
        families: list[Metric] = []
        names = await self._safe(self._project_names, {})
        for service, part in (("compute", self._nova), ("network", self._neutron), ("image", self._glance),
                              ("volume", self._cinder), ("identity", self._identity),
                              ("placement", self._placement)):
            if service != "identity" and service not in self.services:
                continue
            prefix = {"compute": "nova", "network": "neutron", "image": "glance", "volume": "cinder"}.get(
                service, service)
            up = gauge(f"openstack_{prefix}_up", "up")
            try:
                families += await part(names)
                up.add_metric([], 1)
            except Exception:  # noqa: BLE001
                LOG.exception("openstack_%s_* could not be computed", prefix)
                up.add_metric([], 0)
            families.append(up)
        families += await self._safe(self._stuck, [])
        families += self._disk_usage()
        self.families = families
        self.rendered = await asyncio.to_thread(render, families)
        self.refreshed_at = time.time()
        self.refresh_seconds = time.perf_counter() - started

    async def _safe(self, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return await fn()
        except Exception:  # noqa: BLE001
            LOG.exception("metrics: %s failed", getattr(fn, "__name__", fn))
            return default

    async def _rows(self, stmt: Any) -> list[Any]:
        async with self.db.reader() as s:
            return list((await s.execute(stmt)).all())

    async def _project_names(self) -> dict[str, str]:
        p = _t("identity_project", "id", "name")
        return dict(await self._rows(select(p.c.id, p.c.name)))

    def _alive(self, seen: dt.datetime | None, kind: str, now: dt.datetime) -> int:
        return int(seen is not None and (now - seen).total_seconds() <= self.down[kind])

    # -- nova --------------------------------------------------------------------------------------
    async def _nova(self, names: dict[str, str]) -> list[Metric]:
        now = utcnow()
        sv = _t("compute_server", "id", "name", "project_id", "user_id", "vm_state", "task_state", "host",
                "availability_zone", "flavor_id", "access_ipv4", "access_ipv6", ("deleted_at", UTCDateTime))
        live = sv.c.deleted_at.is_(None)
        out: list[Metric] = []
        total = (await self._rows(select(func.count()).select_from(sv).where(live)))[0][0]
        f = gauge("openstack_nova_total_vms", "total_vms")
        f.add_metric([], total)
        out.append(f)

        agg = _t("compute_aggregate", ("id", Integer), "name", "meta")
        agg_host = _t("compute_aggregate_host", ("aggregate_id", Integer), "host")
        zones: dict[str, str] = {}
        aggregates: dict[str, list[str]] = {}
        for name, meta, host in await self._rows(select(agg.c.name, agg.c.meta, agg_host.c.host).join(
                agg_host, agg_host.c.aggregate_id == agg.c.id)):
            zone = (json.loads(meta) if isinstance(meta, str) else (meta or {})).get("availability_zone")
            if zone:
                zones[host] = zone
            else:
                aggregates.setdefault(host, []).append(name)

        def zone_of(host: str | None) -> str:
            return zones.get(host or "", self.default_zone)

        running = gauge("openstack_nova_running_vms", "running_vms",
                        ["hostname", "availability_zone", "aggregates", "tenant_id"])
        for host, az, project, n in await self._rows(
                select(sv.c.host, sv.c.availability_zone, sv.c.project_id, func.count())
                .where(live, sv.c.vm_state == "active").group_by(sv.c.host, sv.c.availability_zone, sv.c.project_id)):
            running.add_metric([host or "", az or zone_of(host), ",".join(sorted(aggregates.get(host or "", []))),
                                project], n)
        out.append(running)

        status = gauge("openstack_nova_server_status", "server_status",
                       ["id", "status", "name", "tenant_id", "user_id", "address_ipv4", "address_ipv6", "host_id",
                        "hypervisor_hostname", "uuid", "availability_zone", "flavor_id", "instance_libvirt"])
        for r in await self._rows(select(sv.c.id, sv.c.name, sv.c.project_id, sv.c.user_id, sv.c.vm_state,
                                         sv.c.task_state, sv.c.host, sv.c.availability_zone, sv.c.flavor_id,
                                         sv.c.access_ipv4, sv.c.access_ipv6).where(live)
                                  .order_by(sv.c.id).limit(MAX_SERIES)):
            st = server_status(r.vm_state, r.task_state)
            status.add_metric([r.id, st, r.name, r.project_id, r.user_id, r.access_ipv4 or "", r.access_ipv6 or "",
                               host_id(r.project_id, r.host), r.host or "", r.id, r.availability_zone or "",
                               r.flavor_id or "", ""], SERVER_STATUS.get(st, SERVER_STATUS["UNKNOWN"]))
        out.append(status)

        svc = _t("compute_service", "id", "host", "binary", ("disabled", Boolean), "disabled_reason",
                 ("forced_down", Boolean), ("last_seen_at", UTCDateTime))
        agent = gauge("openstack_nova_agent_state", "agent_state",
                      ["id", "hostname", "service", "adminState", "zone", "disabledReason"])
        for r in await self._rows(select(*svc.c)):
            agent.add_metric([r.id, r.host, r.binary, "disabled" if r.disabled else "enabled", zone_of(r.host),
                              r.disabled_reason or ""],
                             0 if r.forced_down else self._alive(r.last_seen_at, "compute", now))
        out.append(agent)

        # the hypervisors: what each node offers (compute_node) and what placement has allocated there
        node = _t("compute_node", "id", "host", "hypervisor_hostname", ("vcpus", Integer), ("memory_mb", Integer),
                  ("local_gb", Integer))
        used = await self._allocated_by_provider()
        workload = dict(await self._rows(select(sv.c.host, func.count()).where(
            live, sv.c.task_state.is_not(None)).group_by(sv.c.host)))
        labels = ["hostname", "availability_zone", "aggregates"]
        hv = {n: gauge(f"openstack_nova_{n}", n, labels) for n in (
            "current_workload", "vcpus_available", "vcpus_used", "memory_available_bytes", "memory_used_bytes",
            "local_storage_available_bytes", "local_storage_used_bytes", "free_disk_bytes")}
        for r in await self._rows(select(*node.c)):
            u = used.get(r.id, {})
            lv = [r.hypervisor_hostname, zone_of(r.host), ",".join(sorted(aggregates.get(r.host, [])))]
            disk_used = u.get("DISK_GB", 0)
            for name, value in (("current_workload", workload.get(r.host, 0)), ("vcpus_available", r.vcpus),
                                ("vcpus_used", u.get("VCPU", 0)), ("memory_available_bytes", r.memory_mb * MIB),
                                ("memory_used_bytes", u.get("MEMORY_MB", 0) * MIB),
                                ("local_storage_available_bytes", r.local_gb * GIB),
                                ("local_storage_used_bytes", disk_used * GIB),
                                ("free_disk_bytes", (r.local_gb - disk_used) * GIB)):
                hv[name].add_metric(lv, value)
        out += hv.values()

        flavors = _t("compute_flavor", "id")
        f = gauge("openstack_nova_flavors", "flavors")
        f.add_metric([], (await self._rows(select(func.count()).select_from(flavors)))[0][0])
        out.append(f)
        f = gauge("openstack_nova_availability_zones", "availability_zones")
        f.add_metric([], len(set(zones.values()) | {self.default_zone}))
        out.append(f)
        out += await self._nova_limits(names, live, sv)
        return out

    async def _allocated_by_provider(self) -> dict[str, dict[str, int]]:
        al = _t("placement_allocation", "provider_uuid", "resource_class", ("used", Integer))
        out: dict[str, dict[str, int]] = {}
        for provider, rc, used in await self._rows(select(al.c.provider_uuid, al.c.resource_class,
                                                          func.sum(al.c.used)).group_by(al.c.provider_uuid,
                                                                                        al.c.resource_class)):
            out.setdefault(provider, {})[rc] = int(used or 0)
        return out

    async def _nova_limits(self, names: dict[str, str], live: Any, sv: Any) -> list[Metric]:
        """limits_{vcpus,memory,instances}_{used,max}{tenant,tenant_id}, for every project (os-limits)."""
        al = _t("placement_allocation", "consumer_uuid", "resource_class", ("used", Integer))
        co = _t("placement_consumer", "uuid", "project_id", "consumer_type")
        used: dict[str, dict[str, int]] = {}
        for project, rc, n in await self._rows(
                select(co.c.project_id, al.c.resource_class, func.sum(al.c.used))
                .join(co, co.c.uuid == al.c.consumer_uuid)
                .where(al.c.resource_class.in_(("VCPU", "MEMORY_MB")),
                       or_none(co.c.consumer_type))
                .group_by(co.c.project_id, al.c.resource_class)):
            used.setdefault(project, {})[rc] = int(n or 0)
        for project, n in await self._rows(select(sv.c.project_id, func.count()).where(live)
                                           .group_by(sv.c.project_id)):
            used.setdefault(project, {})["servers"] = n
        rl = _t("identity_registered_limit", "resource_name", ("default_limit", Integer))
        lim = _t("identity_limit", "project_id", "resource_name", ("resource_limit", Integer))
        resources = list(DEFAULT_LIMITS)
        defaults = dict(DEFAULT_LIMITS)
        defaults.update(dict(await self._rows(select(rl.c.resource_name, rl.c.default_limit)
                                              .where(rl.c.resource_name.in_(resources)))))
        overrides: dict[tuple[str, str], int] = {
            (p, r): v for p, r, v in await self._rows(select(lim.c.project_id, lim.c.resource_name,
                                                             lim.c.resource_limit)
                                                      .where(lim.c.resource_name.in_(resources)))}
        labels = ["tenant", "tenant_id"]
        fam = {n: gauge(f"openstack_nova_limits_{n}", f"limits_{n}", labels) for n in (
            "vcpus_max", "vcpus_used", "memory_max", "memory_used", "instances_used", "instances_max")}
        for project, name in sorted(names.items()):
            u = used.get(project, {})
            lv = [name, project]

            def limit(resource: str, project: str = project) -> int:
                return overrides.get((project, resource), defaults[resource])

            fam["vcpus_max"].add_metric(lv, limit("class:VCPU"))
            fam["vcpus_used"].add_metric(lv, u.get("VCPU", 0))
            fam["memory_max"].add_metric(lv, limit("class:MEMORY_MB"))
            fam["memory_used"].add_metric(lv, u.get("MEMORY_MB", 0))
            fam["instances_max"].add_metric(lv, limit("servers"))
            fam["instances_used"].add_metric(lv, u.get("servers", 0))
        return list(fam.values())

    # -- neutron -----------------------------------------------------------------------------------
    async def _neutron(self, names: dict[str, str]) -> list[Metric]:
        now = utcnow()
        out: list[Metric] = []
        for name, tname in (("networks", "network_network"), ("subnets", "network_subnet"),
                            ("ports", "network_port"), ("routers", "network_router"),
                            ("security_groups", "network_security_group")):
            f = gauge(f"openstack_neutron_{name}", name)
            f.add_metric([], (await self._rows(select(func.count()).select_from(_t(tname, "id"))))[0][0])
            out.append(f)
        fip = _t("network_floating_ip", "id", "project_id", "floating_network_id", "floating_ip_address",
                 "port_id", "router_id")
        total = (await self._rows(select(func.count()).select_from(fip)))[0][0]
        f = gauge("openstack_neutron_floating_ips", "floating_ips")
        f.add_metric([], total)
        out.append(f)
        each = gauge("openstack_neutron_floating_ip", "floating_ip",
                     ["id", "floating_network_id", "router_id", "status", "project_id", "floating_ip_address"])
        for r in await self._rows(select(*fip.c).order_by(fip.c.id).limit(MAX_SERIES)):
            each.add_metric([r.id, r.floating_network_id, r.router_id or "", "ACTIVE" if r.port_id else "DOWN",
                             r.project_id, r.floating_ip_address], 1)
        out.append(each)
        f = gauge("openstack_neutron_floating_ips_associated_not_active", "floating_ips_associated_not_active")
        f.add_metric([], 0)  # a floating IP here is ACTIVE as soon as it has a port
        out.append(f)
        ag = _t("network_agent", "id", "agent_type", "binary", "host", "availability_zone",
                ("admin_state_up", Boolean), ("heartbeat_at", UTCDateTime))
        agent = gauge("openstack_neutron_agent_state", "agent_state",
                      ["id", "hostname", "service", "adminState", "availability_zone"])
        for r in await self._rows(select(*ag.c)):
            agent.add_metric([r.id, r.host, r.binary, "up" if r.admin_state_up else "down",
                              r.availability_zone or ""], self._alive(r.heartbeat_at, "network", now))
        out.append(agent)
        return out

    # -- glance ------------------------------------------------------------------------------------
    async def _glance(self, names: dict[str, str]) -> list[Metric]:
        im = _t("image_image", "id", "name", "owner", "status", ("size", BigInteger), ("deleted_at", UTCDateTime))
        live = im.c.deleted_at.is_(None) & (im.c.status != "deleted")
        f = gauge("openstack_glance_images", "images")
        f.add_metric([], (await self._rows(select(func.count()).select_from(im).where(live)))[0][0])
        each = gauge("openstack_glance_image_bytes", "image_bytes", ["id", "name", "tenant_id"])
        for r in await self._rows(select(im.c.id, im.c.name, im.c.owner, im.c.size).where(live)
                                  .order_by(im.c.id).limit(MAX_SERIES)):
            each.add_metric([r.id, r.name or "", r.owner or ""], r.size or 0)
        return [f, each]

    # -- cinder ------------------------------------------------------------------------------------
    async def _cinder(self, names: dict[str, str]) -> list[Metric]:
        now = utcnow()
        vol = _t("volume_volume", "id", "name", "status", "availability_zone", ("bootable", Boolean), "project_id",
                 "user_id", "volume_type_id", ("size", Integer), ("deleted", Boolean))
        live = vol.c.deleted.is_(False)
        att = _t("volume_attachment", "volume_id", "instance_uuid")
        out: list[Metric] = []
        f = gauge("openstack_cinder_volumes", "volumes")
        f.add_metric([], (await self._rows(select(func.count()).select_from(vol).where(live)))[0][0])
        out.append(f)
        snap = _t("volume_snapshot", "id", ("deleted", Boolean))
        f = gauge("openstack_cinder_snapshots", "snapshots")
        snaps = select(func.count()).select_from(snap).where(snap.c.deleted.is_(False))
        f.add_metric([], (await self._rows(snaps))[0][0])
        out.append(f)
        counter = gauge("openstack_cinder_volume_status_counter", "volume_status_counter", ["status"])
        counts = dict(await self._rows(select(vol.c.status, func.count()).where(live).group_by(vol.c.status)))
        for st in VOLUME_STATUS:
            counter.add_metric([st], counts.get(st, 0))
        out.append(counter)
        types = _t("volume_type", "id", "name")
        type_names = dict(await self._rows(select(types.c.id, types.c.name)))
        servers: dict[str, str] = {}
        with contextlib.suppress(Exception):  # the attachments table has its own columns: best effort
            servers = dict(await self._rows(select(att.c.volume_id, att.c.instance_uuid)))
        gb = gauge("openstack_cinder_volume_gb", "volume_gb", ["id", "name", "status", "availability_zone", "bootable",
                                                                 "tenant_id", "user_id", "volume_type", "server_id"])
        st = gauge("openstack_cinder_volume_status", "volume_status", ["id", "name", "status", "bootable", "tenant_id",
                                                                         "size", "volume_type", "server_id"])
        for r in await self._rows(select(*vol.c).where(live).order_by(vol.c.id).limit(MAX_SERIES)):
            vtype, server, boot = type_names.get(r.volume_type_id or "", ""), servers.get(r.id, ""), str(
                bool(r.bootable)).lower()
            gb.add_metric([r.id, r.name or "", r.status, r.availability_zone or "", boot, r.project_id, r.user_id,
                           vtype, server], r.size)
            st.add_metric([r.id, r.name or "", r.status, boot, r.project_id, str(r.size), vtype, server],
                          VOLUME_STATUS.get(r.status, len(VOLUME_STATUS)))
        out += [gb, st]
        pool = _t("volume_pool", "host", ("capacity_gb", Integer), ("free_gb", Integer), ("disabled", Boolean),
                  "disabled_reason", ("reported_at", UTCDateTime))
        agent = gauge("openstack_cinder_agent_state", "agent_state",
                      ["uuid", "hostname", "service", "adminState", "zone", "disabledReason"])
        free = gauge("openstack_cinder_pool_capacity_free_gb", "pool_capacity_free_gb",
                     ["name", "volume_backend_name", "vendor_name"])
        total = gauge("openstack_cinder_pool_capacity_total_gb", "pool_capacity_total_gb",
                      ["name", "volume_backend_name", "vendor_name"])
        for r in await self._rows(select(*pool.c)):
            backend = r.host.split("@", 1)[1].split("#", 1)[0] if "@" in r.host else r.host
            agent.add_metric([r.host, r.host.split("@", 1)[0], "cinder-volume", "disabled" if r.disabled else "enabled",
                              self.default_zone, r.disabled_reason or ""], self._alive(r.reported_at, "volume", now))
            free.add_metric([r.host, backend, "Cumulo"], r.free_gb)
            total.add_metric([r.host, backend, "Cumulo"], r.capacity_gb)
        out += [agent, free, total]
        used = gauge("openstack_cinder_limits_volume_used_gb", "limits_volume_used_gb", ["tenant", "tenant_id"])
        by_project = dict(await self._rows(select(vol.c.project_id, func.sum(vol.c.size)).where(live)
                                           .group_by(vol.c.project_id)))
        for project, name in sorted(names.items()):
            used.add_metric([name, project], int(by_project.get(project) or 0))
        out.append(used)
        return out

    # -- keystone ----------------------------------------------------------------------------------
    async def _identity(self, names: dict[str, str]) -> list[Metric]:
        out: list[Metric] = []
        for name, tname in (("domains", "identity_domain"), ("users", "identity_user"),
                            ("groups", "identity_group"), ("projects", "identity_project"),
                            ("regions", "identity_region")):
            f = gauge(f"openstack_identity_{name}", name)
            f.add_metric([], (await self._rows(select(func.count()).select_from(_t(tname, "id"))))[0][0])
            out.append(f)
        p = _t("identity_project", "id", "name", "domain_id", "parent_id", "description", ("enabled", Boolean),
               ("is_domain", Boolean), "tags")
        info = gauge("openstack_identity_project_info", "project_info",
                     ["is_domain", "description", "domain_id", "enabled", "id", "name", "parent_id", "tags"])
        for r in await self._rows(select(p.c.id, p.c.name, p.c.domain_id, p.c.parent_id, p.c.description,
                                         p.c.enabled).order_by(p.c.id).limit(MAX_SERIES)):
            info.add_metric(["false", r.description or "", r.domain_id, str(bool(r.enabled)).lower(), r.id, r.name,
                             r.parent_id or "", ""], 1)
        out.append(info)
        return out

    # -- placement ---------------------------------------------------------------------------------
    async def _placement(self, names: dict[str, str]) -> list[Metric]:
        rp = _t("placement_provider", "uuid", "name")
        inv = _t("placement_inventory", "provider_uuid", "resource_class", ("total", Integer), ("reserved", Integer),
                 ("allocation_ratio", Float))
        used = await self._allocated_by_provider()
        labels = ["hostname", "resourcetype"]
        fam = {n: gauge(f"openstack_placement_{n}", n, labels) for n in (
            "resource_total", "resource_allocation_ratio", "resource_reserved", "resource_usage")}
        for name, provider, rc, total, reserved, ratio in await self._rows(
                select(rp.c.name, rp.c.uuid, inv.c.resource_class, inv.c.total, inv.c.reserved,
                       inv.c.allocation_ratio).join(inv, inv.c.provider_uuid == rp.c.uuid)):
            lv = [name, rc]
            fam["resource_total"].add_metric(lv, total)
            fam["resource_allocation_ratio"].add_metric(lv, ratio)
            fam["resource_reserved"].add_metric(lv, reserved)
            fam["resource_usage"].add_metric(lv, used.get(provider, {}).get(rc, 0))
        return list(fam.values())

    # -- what the alert rules need beside the exporter's series -------------------------------------
    async def _stuck(self) -> list[Metric]:
        """``cumulo_resources_stuck{kind}``: resources in a transitional state past their lease (plus
        ``lease_grace``), or transitional with no lease and unchanged for ``stuck_after`` seconds,
        as `cumulo doctor`'s lease check counts them; ``cumulo_resources_transitional{kind}`` all of them."""
        now = utcnow()
        expired = now - dt.timedelta(seconds=self.lease_grace)
        unowned = now - dt.timedelta(seconds=self.stuck_after)
        stuck = gauge("cumulo_resources_stuck", "Resources in a transitional state past their lease", ["kind"])
        moving = gauge("cumulo_resources_transitional", "Resources in a transitional state", ["kind"])
        for kind, service, name, transitional in STUCK_KINDS:
            if service not in self.services:
                continue
            t = _t(name, "status", "vm_state", "task_state", ("lease_until", UTCDateTime),
                   ("updated_at", UTCDateTime), ("deleted_at", UTCDateTime), ("deleted", Boolean))
            if kind == "server":
                live, busy = t.c.deleted_at.is_(None), t.c.task_state.is_not(None) | (t.c.vm_state == "building")
            else:
                live, busy = t.c.deleted.is_(False), t.c.status.in_(transitional)
            late = (t.c.lease_until.is_not(None) & (t.c.lease_until < expired)) | (
                busy & t.c.lease_until.is_(None) & (t.c.updated_at < unowned))
            try:
                n_stuck = (await self._rows(select(func.count()).select_from(t).where(live, late)))[0][0]
                n_busy = (await self._rows(select(func.count()).select_from(t).where(live, busy)))[0][0]
            except Exception:  # noqa: BLE001  (a table of a service this cloud does not run)
                continue
            stuck.add_metric([kind], n_stuck)
            moving.add_metric([kind], n_busy)
        return [stuck, moving]

    def _disk_usage(self) -> list[Metric]:
        """``cumulo_filesystem_{size,avail}_bytes{place,path}`` of the state, instances, volumes and
        backups directories, as df counts them (root's reserve left out of the size)."""
        size = gauge("cumulo_filesystem_size_bytes", "Size of the file system that holds the place", ["place", "path"])
        avail = gauge("cumulo_filesystem_avail_bytes", "Bytes free to users on that file system", ["place", "path"])
        for place, path in self.disks.items():
            try:
                usage = shutil.disk_usage(path)
            except OSError:
                continue
            size.add_metric([place, path], usage.used + usage.free)
            avail.add_metric([place, path], usage.free)
        return [size, avail] if self.disks else []

    # -- ceilometer's meters per instance ----------------------------------------------------------
    async def refresh_meters(self) -> None:
        started = time.perf_counter()
        sv = _t("compute_server", "id", "project_id", "user_id", "host", "vm_state", "flavor",
                ("deleted_at", UTCDateTime))
        rows = await self._rows(select(sv.c.id, sv.c.project_id, sv.c.user_id, sv.c.host, sv.c.flavor).where(
            sv.c.deleted_at.is_(None), sv.c.vm_state.in_(("active", "paused")), sv.c.host.is_not(None))
            .order_by(sv.c.id).limit(MAX_METERED))
        sem = asyncio.Semaphore(16)

        async def one(r: Any) -> tuple[Any, dict[str, Any] | None]:
            async with sem:
                try:
                    return r, await self.bus.call(f"compute.{r.host}", "diagnostics", {"server_id": r.id}, timeout=10)
                except Exception as exc:  # noqa: BLE001  (a node down, a guest gone: no sample this round)
                    LOG.debug("no meters of %s from %s: %s", r.id, r.host, exc)
                    return r, None

        results = await asyncio.gather(*(one(r) for r in rows))
        self.meters = ceilometer_families(results)
        self.rendered_meters = await asyncio.to_thread(render, self.meters)
        self.meter_seconds = time.perf_counter() - started


# (kind, the service that owns it, its table, its transitional statuses) as `cumulo doctor` lists them
STUCK_KINDS = [
    ("server", "compute", "compute_server", ()),
    ("volume", "volume", "volume_volume", ("creating", "deleting", "attaching", "detaching", "extending",
                                           "downloading", "uploading", "backing-up", "restoring-backup",
                                           "retyping", "reverting")),
    ("snapshot", "volume", "volume_snapshot", ("creating", "deleting", "restoring")),
]


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(families: list[Metric]) -> bytes:
    """Prometheus text of ``families`` (in a thread: ~90 ms for 6,000 samples, not on the loop)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))  # type: ignore[arg-type]
    return generate_latest(registry)


def or_none(col: Any) -> Any:
    """Not a migration's share (Nova's migration consumers hold the source while a server moves)."""
    return col.is_(None) | (col != "MIGRATION")


# (meter, unit, Prometheus type) as Ceilometer's measurements page lists them
METERS = {
    "cpu": ("ns", "counter"), "vcpus": ("vcpu", "gauge"), "memory": ("MB", "gauge"),
    "memory.usage": ("MB", "gauge"), "disk.root.size": ("GB", "gauge"), "disk.ephemeral.size": ("GB", "gauge"),
    "disk.device.read.bytes": ("B", "counter"), "disk.device.write.bytes": ("B", "counter"),
    "disk.device.read.requests": ("request", "counter"), "disk.device.write.requests": ("request", "counter"),
    "network.incoming.bytes": ("B", "counter"), "network.outgoing.bytes": ("B", "counter"),
    "network.incoming.packets": ("packet", "counter"), "network.outgoing.packets": ("packet", "counter"),
}


def ceilometer_families(results: list[tuple[Any, dict[str, Any] | None]]) -> list[Metric]:
    """``ceilometer_<meter with _ for .>{resource_id, project_id}`` from diagnostics (and ``instance_id``
    on a disk's or a NIC's meters, whose resource is ``<server>-vda``, ``<server>-<MAC>``)."""
    fams: dict[str, Metric] = {}
    for meter, (unit, kind) in METERS.items():
        name = "ceilometer_" + meter.replace(".", "_")
        # a cumulative meter is untyped here: prometheus_client would name a counter's family <name>_total
        # while its samples keep Ceilometer's name; rate() and increase() work on it all the same
        fams[meter] = Metric(name, f"Ceilometer's {meter} in {unit} ({'cumulative' if kind == 'counter' else 'gauge'})",
                             "unknown" if kind == "counter" else "gauge")

    def add(meter: str, resource: str, r: Any, value: Any) -> None:
        if value is None:
            return
        name = "ceilometer_" + meter.replace(".", "_")
        labels = {"resource_id": resource, "project_id": r.project_id}
        if resource != r.id:  # a disk's or a NIC's meter: which server it belongs to
            labels["instance_id"] = r.id
        fams[meter].add_sample(name, labels, float(value))

    for r, diag in results:
        flavor = json.loads(r.flavor) if isinstance(r.flavor, str) else (r.flavor or {})
        add("vcpus", r.id, r, flavor.get("vcpus"))
        add("memory", r.id, r, flavor.get("ram"))
        add("disk.root.size", r.id, r, flavor.get("disk"))
        add("disk.ephemeral.size", r.id, r, flavor.get("ephemeral", 0))
        if not diag:
            continue
        std = diag.get("standard") or {}
        times = [c.get("time") for c in std.get("cpu_details") or [] if c.get("time") is not None]
        add("cpu", r.id, r, sum(times) if times else None)
        add("memory.usage", r.id, r, (std.get("memory_details") or {}).get("used"))
        for n, disk in enumerate(std.get("disk_details") or []):
            dev = f"{r.id}-vd{chr(ord('a') + n)}" if n < 26 else f"{r.id}-disk{n}"
            add("disk.device.read.bytes", dev, r, disk.get("read_bytes"))
            add("disk.device.write.bytes", dev, r, disk.get("write_bytes"))
            add("disk.device.read.requests", dev, r, disk.get("read_requests"))
            add("disk.device.write.requests", dev, r, disk.get("write_requests"))
        for n, nic in enumerate(std.get("nic_details") or []):
            dev = f"{r.id}-{(nic.get('mac_address') or str(n)).replace(':', '')}"
            add("network.incoming.bytes", dev, r, nic.get("rx_octets"))
            add("network.outgoing.bytes", dev, r, nic.get("tx_octets"))
            add("network.incoming.packets", dev, r, nic.get("rx_packets"))
            add("network.outgoing.packets", dev, r, nic.get("tx_packets"))
    return list(fams.values())
