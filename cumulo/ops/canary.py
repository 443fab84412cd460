"""The canary: prove the cloud works end to end, as a user would see it (the Operations Guide's
"intelligent alerting", chapter 13).

One run uploads an image (a fresh copy of the cumulo-tiny guest), builds a network behind a
router on the external network, boots a server on it, waits for the guest's ready line on its
console, reaches the guest's HTTP server through a floating IP, writes and reads an object,
creates a volume and attaches it until the guest sees the disk, and deletes all it made, whatever
failed.  Every step has a name, a verdict and a duration; a failed step names its fault and the
steps that need it are skipped (the cleanup always runs).

It talks to the cloud only through the public APIs (Keystone's catalog, plain HTTP), so it runs
against any cloud of a clouds.yaml; only the floating IP is reached from the local external
namespace <prefix>-ext when this machine has one (else straight from here).

``export_metrics`` turns a run into the Prometheus gauges ``cumulo_canary_success``,
``cumulo_canary_step_success{step}``, ``cumulo_canary_step_seconds{step}`` and
``cumulo_canary_last_run_timestamp_seconds``: in a registry of its own for a node_exporter
textfile (``write_textfile``), or in the process's default registry (the operator port's
/metrics) in the periodic mode of ``cumulo up`` ([canary] interval).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from cumulo.ops.clouds import fault_text

# the steps in their order, and what each needs to have passed
STEPS = ("auth", "image", "network", "server", "guest", "floating-ip", "object", "volume", "cleanup")
NEEDS = {"image": ("auth",), "network": ("auth",), "server": ("image", "network"), "guest": ("server",),
         "floating-ip": ("guest",), "object": ("auth",), "volume": ("guest",)}
GUEST_DIR = Path(__file__).resolve().parents[2] / "guest" / "out"
IMAGE_NAME = "cumulo-tiny"
# user-data: announce on the console every disk with a serial (a volume's id, its first 20
# characters) as it appears, for ten minutes
DISK_WATCHER = """#!/bin/sh
(seen=""; i=0; while [ $i -lt 3000 ]; do
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] || continue
    case " $seen " in *" $s "*) ;; *) echo "canary-disk $s ${b##*/}" > /dev/console; seen="$seen $s";; esac
  done
  i=$((i+1)); sleep 0.2
done) &
"""


class StepFailed(Exception):
    """A step's fault, in words an operator reads."""


@dataclass
class Step:
    name: str
    ok: bool | None = None  # None: skipped
    seconds: float = 0.0
    detail: str = ""

    def line(self) -> str:
        if self.ok is None:
            return f"canary: {self.name:12s} skipped ({self.detail})"
        verdict = "ok" if self.ok else "FAILED"
        line = f"canary: {self.name:12s} {verdict:6s} {self.seconds:6.2f} s"
        return line + (f"  {self.detail}" if self.detail else "")


@dataclass
class Result:
    steps: list[Step] = field(default_factory=list)
    started: float = 0.0  # time.time()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.ok is False]

    def as_dict(self) -> dict[str, Any]:
        return {"success": self.ok, "started": self.started, "seconds": round(self.seconds, 3),
                "failed": [s.name for s in self.failed], "steps": [asdict(s) for s in self.steps]}


# ---- credentials ----

def clouds_files(state_dir: Path | None) -> list[Path]:
    """Where openstacksdk looks for clouds.yaml, then the cloud's own in its state directory."""
    out = []
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        out.append(Path(os.environ["OS_CLIENT_CONFIG_FILE"]))
    out += [Path.cwd() / "clouds.yaml", Path.home() / ".config" / "openstack" / "clouds.yaml",
            Path("/etc/openstack/clouds.yaml")]
    if state_dir is not None:
        out.append(state_dir / "clouds.yaml")
    return out


def find_cloud(name: str, files: list[Path]) -> dict[str, Any]:
    """The entry ``name`` of the first clouds.yaml that has it."""
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError:
            continue
        entry = (data.get("clouds") or {}).get(name)
        if entry:
            return dict(entry)
    raise LookupError(f"no cloud {name!r} in {', '.join(str(p) for p in files)}")


# ---- the run ----

class Canary:
    def __init__(self, cloud: dict[str, Any], *, ext_namespace: str = "", guest_dir: Path = GUEST_DIR,
                 external_network: str = "", flavor: str = "", cidr: str = "10.199.0.0/28",
                 keep_going: bool = False, timeout: float = 180.0,
                 progress: Callable[[Step], None] | None = None) -> None:
        self.cloud = cloud
        self.ext_namespace = ext_namespace
        self.guest_dir = guest_dir
        self.external_network = external_network
        self.flavor = flavor
        self.cidr = cidr
        self.keep_going = keep_going  # run the steps whose needs failed anyway (for a fuller picture)
        self.timeout = timeout
        self.progress = progress or (lambda step: None)
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"cumulo-canary-{self.run_id}"
        self.http: httpx.AsyncClient | None = None
        self.token = ""
        self.project = ""
        self.endpoints: dict[str, str] = {}
        self.made: dict[str, Any] = {}  # what this run created, for the cleanup

    # -- HTTP --

    async def call(self, method: str, url: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
                   **kw: Any) -> httpx.Response:
        assert self.http is not None
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        try:
            r = await self.http.request(method, url, json=body, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code not in ok:
            raise StepFailed(f"{method} {url}: {r.status_code} {fault_text(r)}")
        return r

    async def json(self, method: str, url: str, body: Any = None, **kw: Any) -> Any:
        r = await self.call(method, url, body, **kw)
        return r.json() if r.content else None

    def url(self, service: str, path: str) -> str:
        if service not in self.endpoints:
            raise StepFailed(f"the catalog has no {service} endpoint")
        return self.endpoints[service].rstrip("/") + path

    async def wait(self, what: str, check: Callable[[], Any], timeout: float | None = None, every: float = 0.5) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = await check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out after {timeout or self.timeout:.0f} s waiting for {what}")
            await asyncio.sleep(every)

    # -- the steps --

    async def step_auth(self) -> str:
        auth = self.cloud.get("auth") or {}
        if not auth.get("auth_url"):
            raise StepFailed("the cloud's entry has no auth.auth_url")
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth.get("username"), "password": auth.get("password"),
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
            "scope": {"project": {"name": auth.get("project_name"),
                                  "domain": {"name": auth.get("project_domain_name", "Default")}}}}}
        url = auth["auth_url"].rstrip("/")
        url = url if url.endswith("/v3") else url + "/v3"
        r = await self.call("POST", f"{url}/auth/tokens", body, ok=(201,))
        self.token = r.headers["X-Subject-Token"]
        token = r.json()["token"]
        self.project = token["project"]["id"]
        region, interface = self.cloud.get("region_name"), self.cloud.get("interface", "public")
        for entry in token.get("catalog", []):
            for ep in entry.get("endpoints", []):
                if ep.get("interface") == interface and (not region or ep.get("region_id", region) == region):
                    self.endpoints.setdefault(entry["type"], ep["url"])
        if "volume" not in self.endpoints and "volumev3" in self.endpoints:
            self.endpoints["volume"] = self.endpoints["volumev3"]
        return f"project {auth.get('project_name')}, {len(self.endpoints)} endpoints"

    async def step_image(self) -> str:
        images = self.url("image", "/v2/images")
        found = (await self.json("GET", f"{images}?name={IMAGE_NAME}"))["images"]
        template = next((i for i in found if i.get("status") == "active"), None)
        disk = self.guest_dir / "cumulo-tiny.qcow2"
        if disk.is_file():
            data: bytes | None = None
            size = disk.stat().st_size
        elif template is not None:  # no guest build here: a copy of the cloud's own
            data = (await self.call("GET", f"{images}/{template['id']}/file", timeout=120)).content
            size = len(data)
        else:
            raise StepFailed(f"neither {disk} (run `make guest`) nor an active image {IMAGE_NAME} to copy")
        props = {"os_distro": "cumulo-tiny", "hw_rng_model": "virtio"}
        if template is not None:  # the direct-boot kernel and ramdisk the guest's own image names
            props.update({k: template[k] for k in ("kernel_id", "ramdisk_id", "kernel_args", "hw_rng_model")
                          if template.get(k)})
        image = await self.json("POST", images, {
            "name": self.name, "disk_format": "qcow2", "container_format": "bare", "visibility": "private",
            "min_ram": (template or {}).get("min_ram") or 96, **props})
        self.made["image"] = image["id"]
        content: Any = data if data is not None else file_chunks(disk)
        await self.call("PUT", f"{images}/{image['id']}/file", content=content, timeout=300,
                        headers={"Content-Type": "application/octet-stream"})

        async def active() -> bool:
            status = (await self.json("GET", f"{images}/{image['id']}"))["status"]
            if status in ("killed", "deleted"):
                raise StepFailed(f"image {image['id']} went {status}")
            return status == "active"

        await self.wait("the image to become active", active, 120)
        return f"{image['id']} ({size / 1e6:.1f} MB)"

    async def step_network(self) -> str:
        net = self.url("network", "/v2.0")
        if self.external_network:
            ext = (await self.json("GET", f"{net}/networks?name={self.external_network}"))["networks"]
        else:
            ext = (await self.json("GET", f"{net}/networks?router:external=true"))["networks"]
        if not ext:
            raise StepFailed(f"no external network {self.external_network or '(router:external)'} for a floating IP")
        self.made["external"] = ext[0]["id"]
        n = (await self.json("POST", f"{net}/networks", {"network": {"name": self.name}}))["network"]
        self.made["network"] = n["id"]
        sub = (await self.json("POST", f"{net}/subnets", {"subnet": {
            "name": self.name, "network_id": n["id"], "cidr": self.cidr, "ip_version": 4}}))["subnet"]
        router = (await self.json("POST", f"{net}/routers", {"router": {
            "name": self.name, "external_gateway_info": {"network_id": ext[0]["id"]}}}))["router"]
        self.made["router"] = router["id"]
        await self.json("PUT", f"{net}/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
        self.made["interface"] = sub["id"]
        sg = (await self.json("POST", f"{net}/security-groups", {"security_group": {
            "name": self.name, "description": "cumulo canary: HTTP in"}}))["security_group"]
        self.made["security_group"] = sg["id"]
        await self.json("POST", f"{net}/security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}})
        port = (await self.json("POST", f"{net}/ports", {"port": {
            "name": self.name, "network_id": n["id"], "security_groups": [sg["id"]]}}))["port"]
        self.made["port"] = port["id"]
        self.made["fixed_ip"] = port["fixed_ips"][0]["ip_address"]
        return f"network {n['id']} {self.cidr} behind router {router['id']} on {ext[0]['name']}"

    async def pick_flavor(self) -> str:
        flavors = (await self.json("GET", self.url("compute", "/flavors/detail")))["flavors"]
        if self.flavor:
            match = [f for f in flavors if self.flavor in (f["id"], f["name"])]
            if not match:
                raise StepFailed(f"no flavor {self.flavor}")
            return str(match[0]["id"])
        fit = sorted((f for f in flavors if f["ram"] >= 96 and f["disk"] >= 1), key=lambda f: (f["ram"], f["vcpus"]))
        if not fit:
            raise StepFailed("no flavor with 96 MB of RAM and a disk (name one with --flavor)")
        return str(fit[0]["id"])

    async def step_server(self) -> str:
        flavor = await self.pick_flavor()
        server = (await self.json("POST", self.url("compute", "/servers"), {"server": {
            "name": self.name, "flavorRef": flavor, "imageRef": self.made["image"],
            "networks": [{"port": self.made["port"]}],
            "user_data": base64.b64encode(DISK_WATCHER.encode()).decode()}}))["server"]
        self.made["server"] = server["id"]

        async def active() -> Any:
            s = (await self.json("GET", self.url("compute", f"/servers/{server['id']}")))["server"]
            if s["status"] == "ERROR":
                raise StepFailed(f"server {server['id']} went to ERROR: {(s.get('fault') or {}).get('message', '')}")
            return s if s["status"] == "ACTIVE" else None

        s = await self.wait("the server to become ACTIVE", active)
        return f"{server['id']} on {s.get('OS-EXT-SRV-ATTR:host') or 'its host'} (flavor {flavor})"

    async def console(self) -> str:
        r = await self.call("POST", self.url("compute", f"/servers/{self.made['server']}/action"),
                            {"os-getConsoleOutput": {}}, ok=(200, 409))
        return str(r.json().get("output", "")) if r.status_code == 200 else ""

    async def step_guest(self) -> str:
        async def ready() -> str | None:
            for line in (await self.console()).splitlines():
                if "cumulo-guest ready " in line:
                    return line[line.index("cumulo-guest ready "):]
            return None

        line = await self.wait("the guest's ready line on its console", ready)
        fields = dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)
        if fields.get("ip") != self.made["fixed_ip"]:
            raise StepFailed(f"the guest is up without its address {self.made['fixed_ip']} (no DHCP answer?): "
                             f"{line.strip()}")
        return line.strip()

    async def step_floating_ip(self) -> str:
        fip = (await self.json("POST", self.url("network", "/v2.0/floatingips"), {"floatingip": {
            "floating_network_id": self.made["external"], "port_id": self.made["port"]}}))["floatingip"]
        self.made["floating_ip"] = fip["id"]
        address = fip["floating_ip_address"]
        where = f" from {self.ext_namespace}" if self.ext_namespace else ""
        body = await self.wait(f"an HTTP answer from the guest at http://{address}/{where}",
                               lambda: self.outside_get(f"http://{address}/"), 60, every=1)
        return f"{address} answers {body.strip()!r}{where}"

    async def outside_get(self, url: str) -> str | None:
        """An HTTP GET from the outside world: the local external namespace when there is one."""
        if not self.ext_namespace:
            assert self.http is not None
            try:
                r = await self.http.get(url, timeout=3)
            except httpx.HTTPError:
                return None
            return r.text or " " if r.status_code == 200 else None
        code = ("import sys, urllib.request\n"
                "try: print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
                "except Exception: sys.exit(1)")
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ext_namespace, sys.executable, "-c", code, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return (out.decode() or " ") if proc.returncode == 0 else None

    async def step_object(self) -> str:
        container = self.url("object-store", f"/{self.name}")
        await self.call("PUT", container)
        self.made["container"] = container
        payload = os.urandom(4096)
        r = await self.call("PUT", f"{container}/probe", content=payload)
        self.made["object"] = f"{container}/probe"
        if r.headers.get("ETag", "").strip('"') != hashlib.md5(payload, usedforsecurity=False).hexdigest():
            raise StepFailed(f"PUT {container}/probe: ETag {r.headers.get('ETag')} is not the body's MD5")
        back = (await self.call("GET", f"{container}/probe")).content
        if back != payload:
            raise StepFailed(f"GET {container}/probe: {len(back)} bytes differ from the 4096 written")
        return f"4096 bytes written and read back in {self.name}/probe"

    async def volume_status(self, vid: str) -> str:
        r = await self.call("GET", self.url("volume", f"/volumes/{vid}"), ok=(200, 404))
        return "gone" if r.status_code == 404 else str(r.json()["volume"]["status"])

    async def step_volume(self) -> str:
        vol = (await self.json("POST", self.url("volume", "/volumes"), {"volume": {
            "size": 1, "name": self.name}}))["volume"]
        self.made["volume"] = vol["id"]

        async def status_is(want: str) -> bool:
            now = await self.volume_status(vol["id"])
            if now in ("error", "error_attaching", "gone"):
                raise StepFailed(f"volume {vol['id']} is {now}")
            return now == want

        await self.wait("the volume to become available", lambda: status_is("available"), 120)
        await self.json("POST", self.url("compute", f"/servers/{self.made['server']}/os-volume_attachments"),
                        {"volumeAttachment": {"volumeId": vol["id"]}})
        self.made["attachment"] = vol["id"]
        await self.wait("the volume to be in-use", lambda: status_is("in-use"), 120)
        serial = vol["id"][:20]

        async def seen() -> str | None:
            for line in (await self.console()).splitlines():
                if f"canary-disk {serial}" in line:
                    return line.split()[-1]
            return None

        device = await self.wait("the guest to see the disk", seen, 60)
        return f"{vol['id']} attached, the guest sees it as /dev/{device}"

    async def cleanup(self) -> str:
        """Delete what the run made, in reverse, each removal tried whatever the others did."""
        left: list[str] = []
        m = self.made

        async def attempt(what: str, action: Callable[[], Any]) -> None:
            try:
                await action()
            except Exception as exc:  # noqa: BLE001 - every leftover is named, the others still go
                left.append(f"{what} ({exc})"[:300])

        gone = (200, 202, 204, 404)
        if not self.token:
            return "nothing made"
        if "attachment" in m and "server" in m:
            await attempt(f"volume attachment {m['attachment']}", lambda: self.call(
                "DELETE", self.url("compute", f"/servers/{m['server']}/os-volume_attachments/{m['attachment']}"),
                ok=gone + (400, 409)))
        if "floating_ip" in m:
            await attempt(f"floating IP {m['floating_ip']}", lambda: self.call(
                "DELETE", self.url("network", f"/v2.0/floatingips/{m['floating_ip']}"), ok=gone))
        if "server" in m:
            async def server() -> None:
                url = self.url("compute", f"/servers/{m['server']}")
                await self.call("DELETE", url, ok=gone)

                async def deleted() -> bool:
                    return (await self.call("GET", url, ok=(200, 404))).status_code == 404

                await self.wait("the server to be deleted", deleted, 120)

            await attempt(f"server {m['server']}", server)
        if "volume" in m:
            async def volume() -> None:
                vid = m["volume"]

                async def settled() -> bool:
                    return await self.volume_status(vid) not in ("in-use", "detaching", "attaching", "creating",
                                                                 "reserved")

                await self.wait("the volume to be detached", settled, 120)
                await self.call("DELETE", self.url("volume", f"/volumes/{vid}"), ok=gone)

                async def deleted() -> bool:
                    return await self.volume_status(vid) == "gone"

                await self.wait("the volume to be deleted", deleted, 120)

            await attempt(f"volume {m['volume']}", volume)
        net = self.endpoints.get("network", "").rstrip("/") + "/v2.0"
        if "port" in m:
            await attempt(f"port {m['port']}", lambda: self.call("DELETE", f"{net}/ports/{m['port']}", ok=gone))
        if "interface" in m:
            await attempt(f"router interface on {m['interface']}", lambda: self.call(
                "PUT", f"{net}/routers/{m['router']}/remove_router_interface", {"subnet_id": m["interface"]},
                ok=gone))
        if "router" in m:
            await attempt(f"router {m['router']}", lambda: self.call("DELETE", f"{net}/routers/{m['router']}", ok=gone))
        if "network" in m:
            await attempt(f"network {m['network']}", lambda: self.call(
                "DELETE", f"{net}/networks/{m['network']}", ok=gone))
        if "security_group" in m:
            await attempt(f"security group {m['security_group']}", lambda: self.call(
                "DELETE", f"{net}/security-groups/{m['security_group']}", ok=gone))
        if "image" in m:
            await attempt(f"image {m['image']}", lambda: self.call(
                "DELETE", self.url("image", f"/v2/images/{m['image']}"), ok=gone))
        if "object" in m:
            await attempt(f"object {m['object']}", lambda: self.call("DELETE", m["object"], ok=gone))
        if "container" in m:
            await attempt(f"container {m['container']}", lambda: self.call("DELETE", m["container"], ok=gone))
        if left:
            raise StepFailed("left behind: " + "; ".join(left))
        made = [k for k in ("image", "network", "router", "security_group", "port", "server", "floating_ip",
                            "volume", "container") if k in m]
        return f"deleted {', '.join(made) or 'nothing'}"

    async def run(self) -> Result:
        result = Result(started=time.time())
        t0 = time.monotonic()
        verdicts: dict[str, bool | None] = {}
        self.http = httpx.AsyncClient(timeout=30)
        try:
            for name in STEPS:
                step = Step(name)
                blocked = [n for n in NEEDS.get(name, ()) if not verdicts.get(n)]
                if blocked and not self.keep_going and name != "cleanup":
                    step.detail = f"needs {', '.join(blocked)}"
                    verdicts[name] = None
                    result.steps.append(step)
                    self.progress(step)
                    continue
                fn = self.cleanup if name == "cleanup" else getattr(self, f"step_{name.replace('-', '_')}")
                started = time.monotonic()
                try:
                    step.detail = await fn()
                    step.ok = True
                except StepFailed as exc:
                    step.ok, step.detail = False, str(exc)
                except Exception as exc:  # noqa: BLE001 - a step's unexpected fault is its verdict too
                    step.ok, step.detail = False, f"{type(exc).__name__}: {exc}"
                step.seconds = time.monotonic() - started
                verdicts[name] = step.ok
                result.steps.append(step)
                self.progress(step)
        finally:
            await self.http.aclose()
        result.seconds = time.monotonic() - t0
        return result


async def file_chunks(path: Path) -> Any:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            yield block


# ---- metrics ----

def export_metrics(result: Result, registry: Any = None) -> None:
    """Set the canary's gauges from ``result`` in ``registry`` (default: the process's own)."""
    from prometheus_client import REGISTRY, Gauge

    registry = registry if registry is not None else REGISTRY
    gauges = _GAUGES.get(id(registry))
    if gauges is None:
        gauges = _GAUGES[id(registry)] = (
            Gauge("cumulo_canary_success", "1 when the last canary run passed every step, else 0",
                  registry=registry),
            Gauge("cumulo_canary_step_success", "1 when the step passed in the last canary run, 0 when it failed "
                  "or was skipped", ["step"], registry=registry),
            Gauge("cumulo_canary_step_seconds", "How long the step took in the last canary run", ["step"],
                  registry=registry),
            Gauge("cumulo_canary_last_run_timestamp_seconds", "When the last canary run started (Unix time)",
                  registry=registry))
    success, step_success, step_seconds, last_run = gauges
    success.set(1 if result.ok else 0)
    for step in result.steps:
        step_success.labels(step.name).set(1 if step.ok else 0)
        step_seconds.labels(step.name).set(round(step.seconds, 3))
    last_run.set(result.started)


_GAUGES: dict[int, tuple[Any, ...]] = {}


def write_textfile(result: Result, path: str | os.PathLike[str]) -> None:
    """The run's metrics in node_exporter's textfile format (written whole, then renamed)."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    registry = CollectorRegistry()
    export_metrics(result, registry)
    _GAUGES.pop(id(registry), None)
    write_to_textfile(str(path), registry)


def local_ext_namespace(prefix: str) -> str:
    """``<prefix>-ext`` when this machine has it (the outside of the cloud's external networks)."""
    name = f"{prefix}-ext"
    return name if Path("/run/netns", name).exists() else ""


async def periodic(clouds_yaml: Path, prefix: str, interval: float, delay: float,
                   held: Callable[[], bool] = lambda: True, log: Any = None) -> None:
    """The periodic mode of ``cumulo up`` ([canary] interval): a run every ``interval`` seconds,
    the first ``delay`` seconds after the start, as the cloud's admin, its gauges in this process's
    registry (the operator port's /metrics).  Only while ``held`` (the leader lease): one canary a
    cloud, whatever the number of controllers.  Cancelled mid-run, it still deletes what it made."""
    import logging

    log = log or logging.getLogger(__name__)
    await asyncio.sleep(delay)
    while True:
        if held():
            try:
                cloud = find_cloud("cumulo", [clouds_yaml])
            except LookupError as exc:
                log.warning("canary: %s", exc)
            else:
                runner = Canary(cloud, ext_namespace=local_ext_namespace(prefix),
                                progress=lambda step: log.info("%s", step.line()))
                try:
                    result = await runner.run()
                except asyncio.CancelledError:
                    if runner.http is not None and runner.http.is_closed:
                        runner.http = httpx.AsyncClient(timeout=30)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(runner.cleanup(), 120)
                    if runner.http is not None:
                        await runner.http.aclose()
                    raise
                export_metrics(result)
                if result.ok:
                    log.info("canary: passed in %.1f s", result.seconds)
                else:
                    log.warning("canary: FAILED at %s (%s)", result.failed[0].name, result.failed[0].detail)
        await asyncio.sleep(interval)
