"""The controller process: every API of the services that run, in one asyncio loop.

``Controller.start()`` opens the database (running migrations), the bus and the services, and
``serve()`` binds each API's port plus the operator port until a signal asks it to stop; then it
closes connections in order so nothing is left half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.types import ASGIApp

from cumulo.core import bus as busmod
from cumulo.core import logging as logmod
from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.core.http.admin import create_admin_app
from cumulo.core.policy import Enforcer
from cumulo.identity import policies as identity_policies
from cumulo.identity.api import build_app as identity_app
from cumulo.identity.service import IdentityService
from cumulo.identity.service.bootstrap import CatalogEntry, bootstrap

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
    bus: Any = None
    identity: IdentityService | None = None
    image: Any = None
    agents: list[Any] = field(default_factory=list)
    servers: Any = None
    metadata_secret: str = ""
    listeners: list[Listener] = field(default_factory=list)
    _servers: list[_Server] = field(default_factory=list)

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
        self.db = Database(cfg.database_url, cfg.database.pool_size, cfg.database.echo)
        await self.db.migrate()
        self.bus = busmod.connect(cfg.bus.url, cfg.bus.rpc_timeout, cfg.bus.prefix)
        await self.bus.start()
        self.identity = IdentityService(cfg, self.db, self.bus)
        await self.identity.start()
        admin_pw = self.secret("admin-password", cfg.bootstrap.admin_password)
        demo_pw = self.secret("demo-password", cfg.bootstrap.demo_password)
        await bootstrap(self.identity, admin_pw, demo_pw, self.catalog(), cfg.api.region)
        policy = Enforcer(identity_policies.RULES, cfg.policy.file or None)
        self.listeners = [Listener("identity", cfg.identity.port,
                                   identity_app(self.identity, policy, cfg.api.max_request_body_size))]
        if "image" in cfg.services:
            from cumulo.image.api import build_app as image_app
            from cumulo.image.service import ImageService

            self.image = ImageService(cfg, self.db, self.identity)
            await self.image.start()
            if cfg.image.upload_guest_images:
                from sqlalchemy import select as _select

                from cumulo.identity import models as im
                from cumulo.image.guest import upload_guest

                async with self.db.session() as s:
                    admin_project = (await s.execute(_select(im.Project.id).where(
                        im.Project.name == cfg.bootstrap.admin_project,
                        im.Project.domain_id == cfg.identity.default_domain_id))).scalar_one()
                await upload_guest(self.image, admin_project)
            self.listeners.append(Listener("image", cfg.image.port,
                                           image_app(self.image, self.identity, cfg.api.max_request_body_size)))
        if "compute" in cfg.services:
            from cumulo.compute.api import build_app as compute_app
            from cumulo.compute.conductor import Conductor
            from cumulo.compute.servers import ServerManager
            from cumulo.compute.service import ComputeService
            from cumulo.placement.service import PlacementService as _Placement

            compute = ComputeService(cfg, self.db, self.identity)
            await compute.start()
            conductor = Conductor(self.db, self.bus, _Placement(self.db))
            await conductor.start()
            network = None
            if "network" in cfg.services:
                from cumulo.network.service import NetworkService

                network = NetworkService(self.db)
            self.servers = conductor.servers = ServerManager(
                self.db, self.bus, compute, _Placement(self.db), cfg.compute.build_timeout, images=self.image,
                image_url=cfg.endpoint(cfg.image.port) if "image" in cfg.services else "", network=network)
            await self.servers.start()
            if cfg.compute.fake_nodes:
                from cumulo.compute.agent import ComputeAgent
                from cumulo.compute.virt.fake import FakeDriver

                (cfg.state_path / "fake").mkdir(parents=True, exist_ok=True)
                for i in range(cfg.compute.fake_nodes):
                    driver = FakeDriver(f"fake-{i}", state_file=cfg.state_path / "fake" / f"fake-{i}.json")
                    agent = ComputeAgent(self.bus, f"fake-{i}", driver, cfg.compute.report_interval)
                    await agent.start()
                    self.agents.append(agent)
            if cfg.compute.local_node:
                import shutil

                from cumulo.compute.agent import qemu_agent

                if shutil.which("qemu-system-x86_64") and shutil.which("qemu-img"):
                    import socket

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
            from cumulo.core.http.app import create_app

            self.metadata_secret = self.secret("metadata-secret", cfg.compute.metadata_secret)
            self.listeners.append(Listener("metadata", cfg.compute.metadata_port, create_app(
                "compute", metadata.router(self.servers, self.metadata_secret), None, max_body=65536,
                redirect_slashes=False)))
            self.listeners.append(Listener("compute", cfg.compute.port, compute_app(
                compute, self.identity, cfg.api.max_request_body_size, self.servers, self.image)))
        if "network" in cfg.services:
            await self.start_network()
        if "placement" in cfg.services:
            from cumulo.placement.api import build_app as placement_app
            from cumulo.placement.service import PlacementService

            self.listeners.append(Listener("placement", cfg.placement.port, placement_app(
                PlacementService(self.db), self.identity, cfg.api.max_request_body_size)))
        write_clouds(cfg, admin_pw, demo_pw)

    async def start_network(self) -> None:
        """The Network API, the dataplane's desired state on the bus, and this machine's network
        agent when the dataplane runs here."""
        from cumulo.network.api import build_app as network_app
        from cumulo.network.dataplane.linux import enabled
        from cumulo.network.service import NetworkService
        from cumulo.network.topology import Topology, notifying

        cfg = self.cfg
        svc = NetworkService(self.db)
        await Topology(self.db, svc).start(self.bus)
        self.listeners.append(Listener("network", cfg.network.port, notifying(network_app(
            svc, self.identity, cfg.api.max_request_body_size), self.bus)))
        if cfg.network.bootstrap:
            from cumulo.network.bootstrap import first_topology

            await first_topology(self.db, svc, cfg)
        if enabled(cfg.network.dataplane):
            from cumulo.network.agent import NetworkAgent

            secret = self.metadata_secret or self.secret("metadata-secret", cfg.compute.metadata_secret)
            agent = NetworkAgent(self.bus, cfg.network.namespace_prefix, cfg.state_path,
                                 f"http://127.0.0.1:{cfg.compute.metadata_port}", secret,
                                 cfg.network.reconcile_interval)
            await agent.start()
            self.agents.append(agent)
            LOG.info("network dataplane runs on this machine (namespaces %s-*)", cfg.network.namespace_prefix)
        else:
            LOG.info("network dataplane is off on this machine: the Network API alone")

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
        return entries

    async def health(self) -> dict[str, str]:
        status = {}
        try:
            assert self.db is not None
            async with self.db.session() as s:
                from sqlalchemy import text

                await s.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            status["database"] = f"failing: {exc}"
        for listener in self.listeners:
            status[listener.name] = "ok"
        return status

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        cfg = self.cfg
        specs = [(lst.name, lst.port, lst.app) for lst in self.listeners]
        if cfg.metrics.enabled:
            specs.append(("operator", cfg.metrics.port, create_admin_app(self.health)))
        for name, port, app in specs:
            host = "127.0.0.1" if name == "operator" else cfg.api.bind_host
            config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off",
                                    access_log=False, server_header=False, proxy_headers=False,
                                    timeout_graceful_shutdown=5)
            self._servers.append(_Server(config))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [loop.create_task(s.serve(), name=f"serve-{spec[0]}") for s, spec in zip(self._servers, specs,
                                                                                       strict=True)]
        while not all(s.started for s in self._servers):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
                raise SystemExit("a listener could not start (is the port in use?)")
            await asyncio.sleep(0.02)
        write_status(cfg, specs)
        LOG.info("cumulo is up: %s", ", ".join(f"{n} on {cfg.api.bind_host}:{p}" for n, p, _ in specs))
        if ready is not None:
            ready.set()
        waiter = loop.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        LOG.info("shutting down")
        for s in self._servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        waiter.cancel()
        await self.close()

    async def close(self) -> None:
        for agent in self.agents:
            await agent.stop()
        if self.servers is not None:
            await self.servers.stop()
        if self.image is not None:
            await self.image.stop()
        if self.identity is not None:
            await self.identity.stop()
        if self.bus is not None:
            await self.bus.stop()
        if self.db is not None:
            await self.db.close()
        with contextlib.suppress(FileNotFoundError):
            (self.cfg.state_path / "status.json").unlink()


def write_status(cfg: Config, specs: list[tuple[str, int, Any]]) -> None:
    status = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(),
              "listeners": {name: f"http://{cfg.public_host}:{port}" for name, port, _ in specs},
              "database": logmod.mask_url(cfg.database_url), "bus": logmod.mask_url(cfg.bus.url)}
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


async def run(cfg: Config, ready: asyncio.Event | None = None) -> None:
    controller = Controller(cfg)
    try:
        await controller.start()
    except BaseException:
        await controller.close()
        raise
    await controller.serve(ready)
