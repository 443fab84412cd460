"""``cumulo backup verify``: prove a backup restores, by restoring it and asking the APIs.

The backup's files are checked against the manifest, restored into a scratch state directory
(and, for PostgreSQL, a scratch database on the same server), and a cloud is started there on
spare ports with everything that could touch the live cloud turned off: its own SQLite or
scratch database, the in-process bus (never the live cloud's RabbitMQ), no network dataplane,
no QEMU node, no guest image upload, no bootstrap topology, no ~/.config/openstack/clouds.yaml.
Each resource type the manifest recorded at backup time (the ids in the database snapshot:
projects, users, images, flavors, servers, networks, ports, volumes, ...) is then listed through
its API and compared.  The scratch cloud is stopped and its directory removed afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from cumulo.core import config as configmod
from cumulo.ops.backup import (
    RESUME_AFTER_RESTORE,
    BackupError,
    Progress,
    _pg_args,
    _plain_url,
    check,
    read_manifest,
    restore,
)

# resource -> (service, path, key in the answer); the ids compared with the manifest's
LISTS: dict[str, tuple[str, str, str]] = {
    "projects": ("identity", "/v3/projects", "projects"),
    "users": ("identity", "/v3/users", "users"),
    "domains": ("identity", "/v3/domains", "domains"),
    "images": ("image", "/v2/images?limit=1000", "images"),
    "flavors": ("compute", "/v2.1/flavors?is_public=None&limit=1000", "flavors"),
    "servers": ("compute", "/v2.1/servers?all_tenants=1&limit=1000", "servers"),
    "networks": ("network", "/v2.0/networks", "networks"),
    "subnets": ("network", "/v2.0/subnets", "subnets"),
    "ports": ("network", "/v2.0/ports", "ports"),
    "routers": ("network", "/v2.0/routers", "routers"),
    "floating_ips": ("network", "/v2.0/floatingips", "floatingips"),
    "security_groups": ("network", "/v2.0/security-groups", "security_groups"),
    "volumes": ("volume", "/v3/{project}/volumes?all_tenants=1&limit=1000", "volumes"),
    "snapshots": ("volume", "/v3/{project}/snapshots?all_tenants=1&limit=1000", "snapshots"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_settings(cfg: configmod.Config) -> dict[str, int]:
    """Every listening port of the configuration (``[section] port`` and ``*_port``), by its
    CUMULO_ variable, whatever services there are: 0 where one is turned off."""
    out = {}
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                if f.name == "port" or f.name.endswith("_port"):
                    out[f"CUMULO_{section.name.upper()}__{f.name.upper()}"] = int(getattr(value, f.name))
    return out


def scratch_env(scratch: Path, database_url: str, cfg: configmod.Config) -> dict[str, str]:
    """The environment of the scratch cloud: the operator's settings (CUMULO_SERVICES, fake nodes,
    ...) with every one that could reach the live cloud replaced."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({name: str(_free_port() if port else 0) for name, port in port_settings(cfg).items()})
    env.update({
        "CUMULO_STATE_DIR": str(scratch), "CUMULO_DATABASE__URL": database_url, "CUMULO_BUS__URL": "memory://",
        "CUMULO_API__BIND_HOST": "127.0.0.1", "CUMULO_API__PUBLIC_HOST": "127.0.0.1", "CUMULO_API__WORKERS": "1",
        "CUMULO_IDENTITY__KEY_REPOSITORY": str(scratch / "fernet-keys"),
        "CUMULO_VOLUME__VOLUMES_PATH": str(scratch / "volumes"),
        "CUMULO_VOLUME__BACKUPS_PATH": str(scratch / "backups"),
        "CUMULO_COMPUTE__INSTANCES_PATH": str(scratch / "instances"),
        "CUMULO_COMPUTE__LOCAL_NODE": "false", "CUMULO_NETWORK__DATAPLANE": "false",
        "CUMULO_NETWORK__BOOTSTRAP": "false",
        "CUMULO_NETWORK__NAMESPACE_PREFIX": f"cumulo-verify-{uuid.uuid4().hex[:6]}",
        "CUMULO_LOGGING__SYSLOG": "",
        "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false", "CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS": "false",
        "CUMULO_LOGGING__FILE": str(scratch / "cumulo.log"), "CUMULO_METRICS__DISABLE_BY_FILE_PATH": "",
    })
    return env


def _scratch_database(backend: str, live_url: str, scratch: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{scratch / 'cumulo.db'}", lambda: None
    if backend == "postgresql":
        name = f"cumulo_verify_{uuid.uuid4().hex[:10]}"
        admin_url = _plain_url(live_url).set(database="postgres").render_as_string(hide_password=False)
        args, env = _pg_args(admin_url)

        def psql(sql: str) -> None:
            proc = subprocess.run(["psql", "-XAtq", *args, "-c", sql], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise BackupError(f"psql: {proc.stderr.strip()[:300]}")

        psql(f"CREATE DATABASE {name}")
        url = _plain_url(live_url).set(database=name).render_as_string(hide_password=False)
        return url, lambda: psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    raise BackupError(f"verify does not start a scratch {backend} cloud yet: restore it by hand to try it")


def _start(env: dict[str, str], scratch: Path, timeout: float = 90) -> subprocess.Popen[bytes]:
    cumulo = Path(sys.executable).with_name("cumulo")
    command = [str(cumulo)] if cumulo.exists() else [sys.executable, "-m", "cumulo.cli.main"]
    proc = subprocess.Popen([*command, "up", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(scratch / "up.log", "wb"), start_new_session=True)
    import httpx

    url = f"http://127.0.0.1:{env['CUMULO_IDENTITY__PORT']}/v3"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BackupError(f"the scratch cloud did not start (exit {proc.returncode}):\n"
                              f"{(scratch / 'up.log').read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200 and (scratch / "status.json").exists():
                return proc
        if time.monotonic() > deadline:
            _stop(proc)
            raise BackupError(f"the scratch cloud did not answer in {timeout:.0f} s (log: {scratch / 'up.log'})")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _list(client: Any, base: str, path: str, key: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    url: str | None = base + path
    while url:
        r = client.get(url)
        if r.status_code != 200:
            raise BackupError(f"GET {url}: {r.status_code} {r.text[:200]}")
        body = r.json()
        items.update((str(item["id"]), item) for item in body[key])
        nxt = body.get("next") or next((link["href"] for link in body.get(f"{key}_links", [])
                                        if link.get("rel") == "next"), None)
        url = urljoin(base + "/", nxt) if nxt and body[key] else None
    return items


def compare(env: dict[str, str], manifest: dict[str, Any], password: str, cfg: configmod.Config) -> dict[str, Any]:
    """Each recorded resource type's ids, as the scratch cloud's APIs list them, against the manifest."""
    import httpx

    ports = {"identity": "IDENTITY__PORT", "image": "IMAGE__PORT", "compute": "COMPUTE__PORT",
             "network": "NETWORK__PORT", "volume": "VOLUME__PORT"}
    base = {svc: f"http://127.0.0.1:{env['CUMULO_' + key]}" for svc, key in ports.items()}
    b = cfg.bootstrap
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": b.admin_user, "domain": {"id": cfg.identity.default_domain_id}, "password": password}}},
        "scope": {"project": {"name": b.admin_project, "domain": {"id": cfg.identity.default_domain_id}}}}}
    r = httpx.post(base["identity"] + "/v3/auth/tokens", json=auth, timeout=30)
    if r.status_code != 201:
        raise BackupError(f"the restored admin cannot log in: {r.status_code} {r.text[:200]}")
    project = r.json()["token"]["project"]["id"]
    services = {e["type"] for e in r.json()["token"].get("catalog", [])}
    kinds = {"identity": "identity", "image": "image", "compute": "compute", "network": "network",
             "volume": "block-storage"}
    report: dict[str, Any] = {"identical": True, "resources": {}}
    with httpx.Client(headers={"X-Auth-Token": r.headers["X-Subject-Token"]}, timeout=60) as client:
        for resource, want in manifest.get("resources", {}).items():
            if resource not in LISTS:
                continue
            service, path, key = LISTS[resource]
            if kinds[service] not in services and not (service == "volume" and "volumev3" in services):
                report["resources"][resource] = {"skipped": f"{service} does not run"}
                continue
            got = _list(client, base[service], path.format(project=project), key)
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            if resource == "security_groups":  # listing makes a project's default group, as in Neutron
                extra = [i for i in extra if got[i].get("name") != "default"]
            report["resources"][resource] = {"backup": len(want), "restored": len(got), "missing": missing,
                                             "extra": extra}
            if missing or extra:
                report["identical"] = False
    return report


def verify(backup: Path, cfg: configmod.Config, key: bytes | None, keep_scratch: bool = False,
           progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or Progress()
    manifest = read_manifest(backup)
    check(backup, manifest, progress)
    backend = manifest["database"]["backend"]
    parent = Path(os.environ.get("TMPDIR", "/tmp"))
    scratch = Path(os.path.realpath(parent)) / f"cumulo-verify-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(mode=0o700)
    drop = None
    proc = None
    try:
        database_url, drop = _scratch_database(backend, cfg.database_url, scratch)
        env = scratch_env(scratch, database_url, cfg)
        scfg = configmod.load(None, env=env)
        progress.say(f"restoring into {scratch}")
        restore(backup, scfg, key=key, progress=progress)
        (scratch / RESUME_AFTER_RESTORE).unlink(missing_ok=True)  # the scratch cloud shows the backup as it is
        config = scratch / "cumulo.toml"
        if not config.exists():
            restored = next(scratch.glob("restored-*"), None)
            if restored is not None:
                env["CUMULO_CONFIG"] = str(restored)
        scfg = configmod.load(None, env=env)
        progress.say("starting the restored cloud on spare ports")
        t = time.monotonic()
        proc = _start(env, scratch)
        started = time.monotonic() - t
        password = (scfg.bootstrap.admin_password or (scratch / "admin-password").read_text().strip())
        report = compare(env, manifest, password, scfg)
        report.update(backup=manifest["name"], scratch=str(scratch), start_seconds=round(started, 1))
        return report
    finally:
        if proc is not None:
            _stop(proc)
        if drop is not None:
            with contextlib.suppress(BackupError):
                drop()
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
