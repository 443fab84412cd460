"""The controller process: every API of the services that run, served by a leader and its workers.

``Controller.start()`` opens the database (running migrations), the bus and the services, and
``serve()`` binds each API's port plus the operator port until a signal asks it to stop; then it
closes connections in order so nothing is left half-done.

The ``cumulo up`` process is the leader (``worker == 0``): it alone migrates, bootstraps, runs the
reconcilers, the conductor (the scheduler's host picture comes from its node reports), the
embedded agents and the bus hub, and it serves the APIs too.  With ``[api] workers`` above 1
(0, the default, is one per core) it binds each API socket once and starts the other processes
(``cumulo.core.workers``), which build the same APIs (``worker >= 1``) without any singleton and
serve them from the inherited sockets.  One leader process is the singleton: a second leader
against the same database is the scale-out case and takes RabbitMQ (docs/operations.md,
"Worker processes").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from sqlalchemy import column, select, table, text
from sqlalchemy.orm import configure_mappers
from starlette.types import ASGIApp

from cumulo.core import bus as busmod
from cumulo.core import logging as logmod
from cumulo.core import workers
from cumulo.core.bus.local import HubBus
from cumulo.core.config import Config
from cumulo.core.db import Database, UTCDateTime, utcnow
from cumulo.core.http import workermetrics
from cumulo.core.http.admin import create_admin_app
from cumulo.core.http.app import create_app
from cumulo.core.http.deadline import Deadline
from cumulo.core.http.healthcheck import Healthcheck, HealthState
from cumulo.core.http.schema import find_openapi
from cumulo.core.http.slowclients import protocol
from cumulo.core.http.watchdog import Watchdog
from cumulo.core.lease import LeaderLease
from cumulo.core.policy import Enforcer
from cumulo.core.version import code_version
from cumulo.identity import policies as identity_policies
from cumulo.identity.api import build_app as identity_app
from cumulo.identity.service import IdentityService
from cumulo.identity.service.bootstrap import CatalogEntry, bootstrap
from cumulo.migrations import models  # noqa: F401  (every service's tables, for configure_mappers)

LOG = logging.getLogger("cumulo.server")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the controller."""

    def install_signal_handlers(self) -> None:  # older uvicorn
        pass

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def,override]  # newer uvicorn
        yield


@dataclass
class Listener:
    name: str
    port: int
    app: ASGIApp


@dataclass
class Controller:
    cfg: Config
    db: Database | None = None
    identity_db: Database | None = None  # [identity] database_url: another region's identity
    bus: Any = None
    identity: IdentityService | None = None
    image: Any = None
    agents: list[Any] = field(default_factory=list)
    servers: Any = None
    volumes: Any = None  # block storage's reconciler (a singleton), when "volume" runs
    volume_service: Any = None  # block storage's VolumeService, which compute calls too
    object_node: Any = None  # object storage's replicator and auditor, when "object" runs here
    object_service: Any = None  # object storage, when it runs in this process (volume backups go there)
    metadata_secret: str = ""
    listeners: list[Listener] = field(default_factory=list)
    _servers: list[_Server] = field(default_factory=list)
    worker: int = 0  # 0: the leader (cumulo up); 1..: an API worker it started
    supervisor: Any = None
    watchdog: Any = None
    exporter: Any = None  # the cloud-level gauges on the leader's /metrics (cumulo.ops.exporter)

    lease: Any = None
    _singletons: set[str] = field(default_factory=set)
    _status: Any = None

    @property
    def leader(self) -> bool:
        return self.worker == 0

    async def run_singleton(self, name: str) -> None:
        """Start the reconcilers of ``image`` or ``servers`` once, in the holder of the leader lease
        (``cumulo.core.lease``): with one controller, at once; with several on one database, in one."""
        if not self.leader or name in self._singletons or self.lease is None or not self.lease.held:
            return
        component = getattr(self, name)
        if component is not None:
            self._singletons.add(name)
            await component.start()

    async def take_singletons(self) -> None:
        for name in ("image", "servers", "volumes"):
            await self.run_singleton(name)

    def refresh_status(self) -> None:
        if self._status is not None:
            self._status()

    def connect_bus(self) -> Any:
        """The leader's bus, or a worker's connection to it.  The embedded memory:// bus spans the
        workers as a hub on a unix socket in the state directory (``cumulo.core.bus.local``)."""
        cfg = self.cfg
        if cfg.bus.url.startswith("memory:"):
            path = workers.unix_path(cfg.state_path, "bus.sock")
            if not self.leader:
                return busmod.connect(f"unix://{path}", cfg.bus.rpc_timeout)
            if workers.count(cfg.api.workers) > 1:
                return HubBus(path, cfg.bus.rpc_timeout)
        return busmod.connect(cfg.bus.url, cfg.bus.rpc_timeout, cfg.bus.prefix)

    def secret(self, name: str, configured: str) -> str:
        """A configured password, or one generated once and kept (0600) in the state directory."""
        if configured:
            logmod.add_secret(configured)
            return configured
        path = self.cfg.state_path / name
        if path.exists():
            if path.stat().st_mode & 0o077:  # written by an older version, or copied in
                os.chmod(path, 0o600)
            value = path.read_text().strip()
            logmod.add_secret(value)
            return value
        value = secrets.token_urlsafe(18)
        logmod.add_secret(value)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    async def start(self) -> None:
        cfg = self.cfg
        cfg.state_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(cfg.state_path, 0o700)
        logmod.add_config_secrets(cfg)
        if cfg.source and os.stat(cfg.source).st_mode & 0o004 and logmod.config_has_secrets(cfg):
            LOG.warning("%s holds passwords or secrets and every local user can read it: chmod 600 it",
                        cfg.source)
        self.db = Database(cfg.database_url, cfg.database.pool_size, cfg.database.echo)
        # every mapper configured now, not by the first request that queries (0.1-0.4 s on the loop)
        configure_mappers()
        if self.leader:
            await self.db.migrate()
            self.lease = LeaderLease(self.db)
            await self.lease.start(self.take_singletons, lambda _held: self.refresh_status())
        self.bus = self.connect_bus()
        await self.bus.start()
        if self.leader:  # the round trips over the bus: any controller's (`cumulo doctor`), this one's (/readyz)
            await self.bus.serve(HEALTH_TARGET, self._ping)
            await self.bus.serve(own_health_target(), self._ping)
        if cfg.identity.database_url:  # another region's identity (its region runs the migrations)
            logmod.add_url_secret(cfg.identity.database_url)
            self.identity_db = Database(cfg.identity.database_url, cfg.database.pool_size, cfg.database.echo)
        self.identity = IdentityService(cfg, self.identity_db or self.db, self.bus)
        await self.identity.start()
        admin_pw = self.secret("admin-password", cfg.bootstrap.admin_password)
        demo_pw = self.secret("demo-password", cfg.bootstrap.demo_password)
        if self.leader:
            await bootstrap(self.identity, admin_pw, demo_pw, self.catalog(), cfg.api.region)
        policy = Enforcer(identity_policies.RULES, cfg.policy.file or None)
        self.listeners = [Listener("identity", cfg.identity.port,
                                   identity_app(self.identity, policy, cfg.api.max_request_body_size))]
        # A service's modules are imported only when it runs in this process: the other four cost
        # ~0.5 s and ~11 MiB at start (python -X importtime, VmRSS), which a controller that runs
        # identity alone, say, need not pay.
        if "image" in cfg.services:
            from cumulo.image.api import build_app as image_app
            from cumulo.image.service import ImageService

            self.image = ImageService(cfg, self.db, self.identity, self.bus)
            await self.run_singleton("image")
            if self.leader and cfg.image.upload_guest_images:
                from cumulo.image.guest import upload_guest

                admin_name = cfg.bootstrap.admin_project
                projects = await self.identity.project_ids([admin_name], cfg.identity.default_domain_id)
                await upload_guest(self.image, projects[admin_name])
            self.listeners.append(Listener("image", cfg.image.port,
                                           image_app(self.image, self.identity, cfg.api.max_request_body_size)))
        if "volume" in cfg.services:
            from cumulo.volume.service import VolumeService

            self.volume_service = VolumeService(
                cfg, self.db, self.bus, self.identity, images=self.image,
                image_url=cfg.endpoint(cfg.image.port) if "image" in cfg.services else "")
        if "compute" in cfg.services:
            from cumulo.compute.api import build_app as compute_app
            from cumulo.compute.conductor import Conductor
            from cumulo.compute.servers import ServerManager
            from cumulo.compute.service import ComputeService
            from cumulo.placement.service import PlacementService as _Placement

            compute = ComputeService(cfg, self.db, self.identity)
            if self.leader:
                await compute.start()
            conductor = Conductor(self.db, self.bus, _Placement(self.db))
            if self.leader:
                await conductor.start()
            network = None
            if "network" in cfg.services:
                from cumulo.network.service import NetworkService

                network = NetworkService(self.db, self.bus)
            self.servers = conductor.servers = ServerManager(
                self.db, self.bus, compute, _Placement(self.db), cfg.compute.build_timeout, images=self.image,
                image_url=cfg.endpoint(cfg.image.port) if "image" in cfg.services else "", network=network,
                volumes=self.volume_service)
            await self.run_singleton("servers")
            if self.leader and cfg.compute.fake_nodes:
                from cumulo.compute.agent import ComputeAgent
                from cumulo.compute.virt.fake import FakeDriver

                (cfg.state_path / "fake").mkdir(parents=True, exist_ok=True)
                for i in range(cfg.compute.fake_nodes):
                    driver = FakeDriver(f"fake-{i}", state_file=cfg.state_path / "fake" / f"fake-{i}.json")
                    agent = ComputeAgent(self.bus, f"fake-{i}", driver, cfg.compute.report_interval)
                    await agent.start()
                    self.agents.append(agent)
            if self.leader and cfg.compute.local_node:
                from cumulo.compute.agent import qemu_agent

                if shutil.which("qemu-system-x86_64") and shutil.which("qemu-img"):
                    base = cfg.compute.host or socket.gethostname()
                    for i in range(max(1, cfg.compute.local_nodes)):
                        agent = qemu_agent(cfg, self.bus, base if i == 0 else f"{base}-{i + 1}")
                        await agent.start()
                        self.agents.append(agent)
                        LOG.info("compute node %s runs QEMU (%s)", agent.host,
                                 agent.driver.node_info().hypervisor_type)
                else:
                    LOG.warning("no compute node on this machine: qemu-system-x86_64 or qemu-img is missing "
                                "(scripts/setup.sh installs them)")
            from cumulo.compute import metadata

            self.metadata_secret = self.secret("metadata-secret", cfg.compute.metadata_secret)
            self.listeners.append(Listener("metadata", cfg.compute.metadata_port, create_app(
                "compute", metadata.router(self.servers, self.metadata_secret), None, max_body=65536,
                redirect_slashes=False)))
            self.listeners.append(Listener("compute", cfg.compute.port, compute_app(
                compute, self.identity, cfg.api.max_request_body_size, self.servers, self.image)))
            self.listeners += console_proxies(cfg, self.db)
        if "network" in cfg.services:
            await self.start_network()
        if "object" in cfg.services:  # before volume: volume backups go to object storage when it runs
            await self.start_object()
        if "volume" in cfg.services:
            await self.start_volume()
        if "placement" in cfg.services:
            from cumulo.placement.api import build_app as placement_app
            from cumulo.placement.service import PlacementService

            self.listeners.append(Listener("placement", cfg.placement.port, placement_app(
                PlacementService(self.db), self.identity, cfg.api.max_request_body_size)))
        if "dashboard" in cfg.services:
            from cumulo.dashboard.app import build_app as dashboard_app

            self.listeners.append(Listener("dashboard", cfg.dashboard.port, dashboard_app(
                cfg.endpoint(cfg.identity.port, "/v3"), self.secret("dashboard-secret", ""), cfg.api.region,
                cfg.policy.file or None, bus=self.bus)))
        if self.leader and cfg.metrics.enabled:
            from cumulo.ops.exporter import CloudExporter

            state = cfg.state_path
            self.exporter = CloudExporter(
                self.db, self.bus, cfg.services, cfg.metrics.cloud_interval, cfg.metrics.meter_interval,
                held=lambda: bool(self.lease and self.lease.held), compute_down_time=cfg.compute.service_down_time,
                volume_down_time=cfg.volume.service_down_time,
                default_zone=cfg.compute.default_availability_zone, lease_grace=cfg.doctor.lease_grace,
                stuck_after=cfg.doctor.stuck_after,
                disks={"state": str(state), "instances": cfg.compute.instances_path or str(state / "instances"),
                       "volumes": cfg.volume.volumes_path or str(state / "volumes"),
                       "backups": cfg.volume.backups_path or str(state / "backups")})
            await self.exporter.start()
        if self.leader:
            write_clouds(cfg, admin_pw, demo_pw)

    async def start_network(self) -> None:
        """The Network API, the dataplane's desired state on the bus, and this machine's network
        agent when the dataplane runs here."""
        from cumulo.network.api import build_app as network_app
        from cumulo.network.dataplane.linux import enabled
        from cumulo.network.ipam import Ipam
        from cumulo.network.topology import Topology, notifying

        cfg = self.cfg
        svc = Ipam(self.db)
        from cumulo.network import agents as network_agents

        network_agents.configure(cfg.network.agent_down_time)
        if self.leader:
            from cumulo.network.agents import Registry

            await Topology(self.db, svc).start(self.bus)
            await Registry(self.db).start(self.bus)  # the network agents' heartbeats
        self.listeners.append(Listener("network", cfg.network.port, notifying(network_app(
            svc, self.identity, cfg.api.max_request_body_size), self.bus)))
        if self.leader and cfg.network.bootstrap:
            from cumulo.network.bootstrap import first_topology

            await first_topology(self.db, svc, self.identity, cfg)
        if self.leader and enabled(cfg.network.dataplane):
            from cumulo.network.agent import NetworkAgent

            secret = self.metadata_secret or self.secret("metadata-secret", cfg.compute.metadata_secret)
            agent = NetworkAgent(self.bus, cfg.network.namespace_prefix, cfg.state_path,
                                 f"http://127.0.0.1:{cfg.compute.metadata_port}", secret,
                                 cfg.network.reconcile_interval, host=cfg.compute.host or socket.gethostname(),
                                 tunnel_address=cfg.network.tunnel_address)
            await agent.start()
            self.agents.append(agent)
            LOG.info("network dataplane runs on this machine (namespaces %s-*)", cfg.network.namespace_prefix)
        else:
            LOG.info("network dataplane is off on this machine: the Network API alone")

    async def start_volume(self) -> None:
        """The Block Storage API, its controller side of the bus and reconciler (the leader's), and
        this machine's volume agent (qcow2 files) when ``[volume] local_node`` is on."""
        from cumulo.volume.api import build_app as volume_app
        from cumulo.volume.reconcile import Reconciler

        cfg = self.cfg
        svc = self.volume_service
        assert svc is not None
        if self.leader:
            await svc.start()
            self.volumes = Reconciler(svc)
            await self.run_singleton("volumes")
            if cfg.volume.local_node:
                from cumulo.volume.agent import file_agent

                if shutil.which("qemu-img"):
                    agent = file_agent(cfg, self.bus)
                    agent.objects = self.object_service
                    await agent.start()
                    self.agents.append(agent)
                    LOG.info("volume node %s keeps its volumes in %s", agent.host, agent.driver.path)
                else:
                    LOG.warning("no volume node on this machine: qemu-img is missing (scripts/setup.sh installs it)")
        self.listeners.append(Listener("volume", cfg.volume.port, volume_app(
            svc, self.identity, cfg.api.max_request_body_size)))

    async def start_object(self) -> None:
        """The Swift v1 API over this machine's ring of device directories, and (the leader's) the
        replicator and auditor that keep its replicas whole."""
        from cumulo.object.api import build_app as object_app
        from cumulo.object.service import ObjectService
        from cumulo.object.storage import ObjectStore

        cfg = self.cfg
        oc = cfg.object
        store = ObjectStore.open(cfg.state_path, replicas=oc.replicas, part_power=oc.part_power, devices=oc.devices,
                                 encryption=oc.encryption)
        svc = self.object_service = ObjectService(cfg, self.db, store)
        if self.leader:
            from cumulo.object.middleware import project_quota

            await project_quota.register_defaults(self.identity)  # unified limits, -1 = none
            from cumulo.object.storage.node import ObjectNode

            self.object_node = ObjectNode(store, oc.replicator_interval)
            await self.object_node.start()
            self.agents.append(self.object_node)
            from cumulo.object.expirer import ObjectExpirer

            expirer = ObjectExpirer(svc, oc.expirer_interval)
            await expirer.start()
            self.agents.append(expirer)
        self.listeners.append(Listener("object", oc.port,
                                       object_app(svc, self.identity, cfg.api.max_request_body_size)))
        if oc.s3_port:  # the S3 API over the same data (cumulo/object/s3)
            from cumulo.object.s3 import build_app as s3_app

            self.listeners.append(Listener("object-s3", oc.s3_port, s3_app(svc, self.identity)))

    def catalog(self) -> list[CatalogEntry]:
        entries = []
        if "identity" in self.cfg.services:
            entries.append(CatalogEntry("identity", "keystone", self.cfg.endpoint(self.cfg.identity.port, "/v3")))
        if "image" in self.cfg.services:
            entries.append(CatalogEntry("image", "glance", self.cfg.endpoint(self.cfg.image.port)))
        if "compute" in self.cfg.services:
            entries.append(CatalogEntry("compute", "nova", self.cfg.endpoint(self.cfg.compute.port, "/v2.1")))
        if "placement" in self.cfg.services:
            entries.append(CatalogEntry("placement", "placement", self.cfg.endpoint(self.cfg.placement.port)))
        if "network" in self.cfg.services:
            entries.append(CatalogEntry("network", "neutron", self.cfg.endpoint(self.cfg.network.port)))
        if "volume" in self.cfg.services:  # without the project id in the path (3.67); volumev3 is the old alias
            volume_url = self.cfg.endpoint(self.cfg.volume.port, "/v3")
            entries.append(CatalogEntry("block-storage", "cinder", volume_url))
            entries.append(CatalogEntry("volumev3", "cinderv3", volume_url))
        if "object" in self.cfg.services:  # identity puts each token's project in the URL
            entries.append(CatalogEntry("object-store", "swift",
                                        self.cfg.endpoint(self.cfg.object.port, "/v1/AUTH_$(project_id)s")))
        if "dashboard" in self.cfg.services:
            entries.append(CatalogEntry("dashboard", "dashboard", self.cfg.endpoint(self.cfg.dashboard.port, "/")))
        return entries

    def openapi(self) -> dict[str, Any]:
        """Each API's OpenAPI document, by listener name."""
        docs = {}
        for listener in self.listeners:
            document = find_openapi(listener.app)
            if document is not None:
                docs[listener.name] = document(self.cfg.endpoint(listener.port))
        return docs

    async def health(self) -> dict[str, str]:
        status = {}
        try:
            assert self.db is not None
            async with self.db.session() as s:
                await s.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            status["database"] = f"failing: {exc}"
        for listener in self.listeners:
            status[listener.name] = "ok"
        return status

    async def _select_one(self) -> None:
        assert self.db is not None
        async with self.db.session() as s:
            await s.execute(text("SELECT 1"))

    async def _ping(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method != "ping":
            raise ValueError(f"unknown {HEALTH_TARGET} method {method}")
        return {"pid": os.getpid(), "host": socket.gethostname(), "leader_lease": bool(self.lease and self.lease.held)}

    async def readiness(self) -> dict[str, str]:
        """``/readyz``: the database answers, a bus round trip comes back, and every agent this
        controller runs has heartbeated within its service_down_time (compute nodes, volume nodes)."""
        status = {"database": "ok", "bus": "ok", "agents": "ok"}

        async def select_one() -> None:
            assert self.db is not None
            async with self.db.session() as s:
                await s.execute(text("SELECT 1"))

        # not wait_for: a cancelled session may wait for SQLite's turn before it ends, so a query
        # that does not answer in time is left to finish in the background
        probe = asyncio.ensure_future(select_one())
        probe.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, even when late
        done, _ = await asyncio.wait([probe], timeout=3)
        failed = probe.exception() if done else TimeoutError("no answer within 3 s")
        if failed is not None:
            status["database"] = f"failing: {type(failed).__name__}: {failed}"[:300]
            status["agents"] = "unknown: the database does not answer"
        try:
            await self.bus.call(own_health_target(), "ping", {}, timeout=3)
        except Exception as exc:  # noqa: BLE001
            status["bus"] = f"failing: no round trip ({type(exc).__name__}: {exc})"[:300]
        if status["database"] == "ok":
            try:
                silent = await self._silent_agents()
            except Exception as exc:  # noqa: BLE001
                silent = [f"heartbeats unreadable ({exc})"]
            if silent:
                status["agents"] = "failing: " + "; ".join(silent)
        return status

    async def _silent_agents(self) -> list[str]:
        """This controller's compute and volume agents whose last heartbeat is older than allowed."""
        from cumulo.compute.agent import ComputeAgent
        from cumulo.volume.agent import VolumeAgent

        kinds = [("compute", ComputeAgent, "compute_service", "last_seen_at", self.cfg.compute.service_down_time),
                 ("volume", VolumeAgent, "volume_pool", "reported_at", self.cfg.volume.service_down_time)]
        now, out = utcnow(), []
        assert self.db is not None
        async with self.db.reader() as s:
            for kind, cls, name, stamp, down_time in kinds:
                hosts = [a.host for a in self.agents if isinstance(a, cls)]
                if not hosts:
                    continue
                t = table(name, column("host"), column(stamp, UTCDateTime))
                seen = dict((await s.execute(select(t.c.host, t.c[stamp]).where(t.c.host.in_(hosts)))).all())
                for host in hosts:
                    at = seen.get(host)
                    if at is None:
                        out.append(f"{kind} agent {host} has not reported yet")
                    elif (now - at).total_seconds() > down_time:
                        out.append(f"{kind} agent {host} silent for {(now - at).total_seconds():.0f} s")
        return out

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        cfg = self.cfg
        # every API port answers GET /healthcheck for load balancers (cumulo.core.http.healthcheck)
        health = HealthState(self._select_one, cfg.metrics.disable_by_file_path)
        specs = [(lst.name, lst.port, Deadline(Healthcheck(lst.app, health), FAULT_FORMAT.get(lst.name, lst.name),
                                               cfg.api.request_timeout, self.worker)) for lst in self.listeners]
        if cfg.metrics.enabled and self.leader:
            specs.append(("operator", cfg.metrics.port, create_admin_app(
                self.health, self.openapi, self.readiness, cfg.metrics.disable_by_file_path)))
        sockets = workers.inherited_sockets() if not self.leader else {}
        if cfg.metrics.enabled:
            if self.leader:  # the operator port's /metrics tells every process's figures
                name, port, app = specs[-1]
                specs[-1] = (name, port, workermetrics.AllProcessesMetrics(
                    app, cfg.state_path, lambda: list(self.supervisor.pids) if self.supervisor else []))
                if self.exporter is not None:  # the cloud-level series, rendered once per refresh
                    specs[-1] = (name, port, self.exporter.wrap(specs[-1][2]))
            else:  # this worker's figures, for the leader's scrapes
                specs.append(("metrics", 0, workermetrics.metrics_only))
                sockets["metrics"] = workermetrics.listen_unix(workermetrics.socket_path(cfg.state_path, self.worker))
        try:
            for name, port, _ in specs:
                if name not in sockets:
                    host = "127.0.0.1" if name == "operator" else cfg.api.bind_host
                    sockets[name] = workers.listen(host, port, cfg.api.backlog)
        except OSError as exc:
            raise SystemExit(f"a listener could not start: {exc} (is the port in use?)") from None
        http = protocol(cfg.api.header_timeout)
        for _name, _port, app in specs:
            config = uvicorn.Config(app, log_config=None, lifespan="off", http=http,
                                    access_log=False, server_header=False, proxy_headers=False,
                                    timeout_graceful_shutdown=5, timeout_keep_alive=int(cfg.api.keepalive_timeout),
                                    limit_concurrency=cfg.api.max_connections or None, backlog=cfg.api.backlog)
            self._servers.append(_Server(config))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM) if self.leader else (signal.SIGTERM,):
            loop.add_signal_handler(sig, stop.set)
        self.watchdog = Watchdog("leader" if self.leader else f"worker-{self.worker}", cfg.api.stall_threshold)
        self.watchdog.start()
        tasks = [loop.create_task(s.serve(sockets=[sockets[spec[0]]]), name=f"serve-{spec[0]}")
                 for s, spec in zip(self._servers, specs, strict=True)]
        while not all(s.started for s in self._servers):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
                raise SystemExit("a listener could not start (is the port in use?)")
            await asyncio.sleep(0.02)
        lost = getattr(self.bus, "lost", None)  # a worker's bus hub is its leader
        waiters = [loop.create_task(stop.wait())] + ([loop.create_task(lost.wait())] if lost is not None else [])
        if self.leader:
            extra = workers.count(cfg.api.workers) - 1
            if extra > 0:
                self.supervisor = workers.Supervisor(
                    workers.worker_argv(cfg.source, str(cfg.state_dir)),
                    {name: sock for name, sock in sockets.items() if name != "operator"}, extra,
                    on_change=lambda _pids: self.refresh_status())
                await self.supervisor.start()
            started = time.time()
            self._status = lambda: write_status(cfg, specs, self.supervisor.pids if self.supervisor else {},
                                                bool(self.lease and self.lease.held), started)
            self.refresh_status()
            LOG.info("cumulo is up: %s%s", ", ".join(f"{n} on {cfg.api.bind_host}:{p}" for n, p, _ in specs),
                     f" (and {extra} API workers)" if extra > 0 else "")
        else:
            workers.tell_ready()
        if ready is not None:
            ready.set()
        canary = None
        if self.leader and cfg.canary.interval > 0:  # its gauges go on this process's /metrics
            from cumulo.ops.canary import periodic

            canary = loop.create_task(periodic(
                cfg.state_path / "clouds.yaml", cfg.network.namespace_prefix, cfg.canary.interval,
                cfg.canary.delay, held=lambda: self.lease is None or bool(self.lease.held)), name="canary")
        await asyncio.wait([*waiters, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if canary is not None:  # a run cut short still deletes what it made
            canary.cancel()
            await asyncio.wait([canary], timeout=150)
        health.draining = True  # /healthcheck says 503 DRAINING to any check still answered
        LOG.info("shutting down%s", "" if self.leader else f" API worker {self.worker}")
        if self.supervisor is not None:
            await self.supervisor.stop()
        for s in self._servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in waiters:
            w.cancel()
        self.watchdog.stop()
        if not self.leader and cfg.metrics.enabled:
            with contextlib.suppress(FileNotFoundError):
                workermetrics.socket_path(cfg.state_path, self.worker).unlink()
        await self.close()

    async def close(self) -> None:
        if self.exporter is not None:
            await self.exporter.stop()
        for agent in self.agents:
            await agent.stop()
        if self.servers is not None:
            await self.servers.stop()
        if self.volumes is not None:
            await self.volumes.stop()
        if self.image is not None:
            await self.image.stop()
        if self.identity is not None:
            await self.identity.stop()
        if self.bus is not None:
            await self.bus.stop()
        if self.db is not None:
            if self.lease is not None:
                await self.lease.close()
            await self.db.close()
        if self.identity_db is not None:
            await self.identity_db.close()
        if self.leader:
            with contextlib.suppress(FileNotFoundError):
                (self.cfg.state_path / "status.json").unlink()


def console_proxies(cfg: Config, db: Database) -> list[Listener]:
    """The serial console and noVNC proxies (``cumulo.compute.consoles.proxy``), each unless its port is 0."""
    from cumulo.compute.consoles.proxy import ConsoleProxy
    from cumulo.compute.consoles.tokens import ConsoleTokens

    c = cfg.compute
    tokens = ConsoleTokens(db, c.console_token_ttl)
    out = []
    if c.serial_proxy_port:
        out.append(Listener("serial-proxy", c.serial_proxy_port, ConsoleProxy(tokens, "serial")))
    if c.novnc_proxy_port:
        out.append(Listener("novnc-proxy", c.novnc_proxy_port, ConsoleProxy(tokens, "novnc", c.novnc_web)))
    return out


# the bus target every leader serves for a round trip (method "ping"), and the one of this process
HEALTH_TARGET = "controller-health"


def own_health_target() -> str:
    return f"{HEALTH_TARGET}.{socket.gethostname()}-{os.getpid()}"


# the fault format of each listener's 503 past its time budget
FAULT_FORMAT = {"metadata": "compute", "volume": "block-storage"}


def write_status(cfg: Config, specs: list[tuple[str, int, Any]], worker_pids: dict[int, int] | None = None,
                 lease: bool = True, started: float | None = None) -> None:
    status = {"pid": os.getpid(), "started": started or time.time(), "host": socket.gethostname(),
              "workers": {str(i): pid for i, pid in sorted((worker_pids or {}).items())}, "leader_lease": lease,
              "listeners": {name: f"http://{cfg.public_host}:{port}" for name, port, _ in specs},
              "database": logmod.mask_url(cfg.database_url), "bus": logmod.mask_url(cfg.bus.url),
              "version": code_version()}  # `cumulo upgrade check` compares it with the installed code
    _write_private(cfg.state_path / "status.json", json.dumps(status, indent=2))


def clouds(cfg: Config, admin_pw: str, demo_pw: str) -> dict[str, Any]:
    auth_url = cfg.endpoint(cfg.identity.port, "/v3")

    def cloud(user: str, password: str, project: str) -> dict[str, Any]:
        return {"auth": {"auth_url": auth_url, "username": user, "password": password,
                         "project_name": project, "user_domain_name": "Default",
                         "project_domain_name": "Default"},
                "region_name": cfg.api.region, "identity_api_version": 3, "interface": "public"}

    return {"cumulo": cloud(cfg.bootstrap.admin_user, admin_pw, cfg.bootstrap.admin_project),
            "cumulo-demo": cloud(cfg.bootstrap.demo_user, demo_pw, cfg.bootstrap.demo_project)}


def write_clouds(cfg: Config, admin_pw: str, demo_pw: str) -> Path:
    """clouds.yaml and openrc files in the state directory, and our clouds merged into the
    user's ~/.config/openstack/clouds.yaml (other clouds there are kept)."""
    entries = clouds(cfg, admin_pw, demo_pw)
    path = cfg.state_path / "clouds.yaml"
    _write_private(path, yaml.safe_dump({"clouds": entries}, sort_keys=False))
    for name, suffix in (("cumulo", ""), ("cumulo-demo", "-demo")):
        a = entries[name]["auth"]
        _write_private(cfg.state_path / f"openrc{suffix}", "".join(
            f"export {k}={v}\n" for k, v in (
                ("OS_AUTH_URL", a["auth_url"]), ("OS_USERNAME", a["username"]), ("OS_PASSWORD", a["password"]),
                ("OS_PROJECT_NAME", a["project_name"]), ("OS_USER_DOMAIN_NAME", "Default"),
                ("OS_PROJECT_DOMAIN_NAME", "Default"), ("OS_REGION_NAME", cfg.api.region),
                ("OS_IDENTITY_API_VERSION", "3"))))
    if cfg.bootstrap.write_user_clouds:
        user_file = Path.home() / ".config" / "openstack" / "clouds.yaml"
        user_file.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {}
        if user_file.exists():
            data = yaml.safe_load(user_file.read_text()) or {}
        data.setdefault("clouds", {}).update(entries)
        _write_private(user_file, yaml.safe_dump(data, sort_keys=False))
    return path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


async def run(cfg: Config, ready: asyncio.Event | None = None, worker: int = 0) -> None:
    """Run the leader (``worker`` 0: ``cumulo up``) or one of its API workers until stopped."""
    controller = Controller(cfg, worker=worker)
    try:
        await controller.start()
    except BaseException:
        await controller.close()
        raise
    await controller.serve(ready)
