"""Block-storage volumes of a QEMU instance.

A volume is hot-plugged into the running guest over QMP, the way libvirt does it for Nova: the
image goes in with ``blockdev-add``, then a ``virtio-blk-pci`` device on one of the PCIe root
ports kept free for volumes (``vp0``..``vp7``), its serial the volume id (the guest sees its first
20 characters in ``/sys/block/vdX/serial``).  Unplugging asks the guest to let go
(``device_del``); QEMU's ``DEVICE_DELETED`` event says it did, and only then is the image closed
(``blockdev-del``), so a volume is never pulled from under a guest that still writes to it.

Block storage's snapshots of an in-use volume are qcow2 overlays in a chain: ``snapshot_volume``
moves the guest onto a new overlay (``blockdev-snapshot-sync``; its node, ``sn<volume><snapshot>``,
becomes the device's root unless a QoS throttle filter is on top, which keeps the volume's node
name) and ``merge_volume`` streams the images above a base into the active one (``block-stream``),
so a deleted snapshot leaves the guest's chain while it runs.

The instance's volumes live in its ``instance.json`` with the root port each sits on, so a
guest started again (stop/start, reboot, resume, a cold move) finds every volume where it was.
Every operation is idempotent: attaching what is attached, or detaching what is gone, is harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from cumulo.compute.virt.qemu.qmp import QMP, QMPError

LOG = logging.getLogger(__name__)

VOLUME_PORTS = 8  # the PCIe root ports kept free for volumes: the most a server holds
DETACH_TIMEOUT = 60.0  # how long a guest may take to release an unplugged volume
UNPLUG_RETRY = 3.0  # seconds between requests to a guest that has not released it yet
COPY_TIMEOUT = 3600.0  # a whole-volume copy of a large volume takes a while
NBD_RECONNECT = 15  # seconds an NBD volume's requests wait for its export to come back


def node_name(volume_id: str) -> str:
    """The QEMU block node of a volume (node names are at most 31 characters)."""
    return "vol" + volume_id.replace("-", "")[:28]


def overlay_node(volume_id: str, snapshot_id: str) -> str:
    """The node of the overlay a snapshot of the volume put on top (at most 31 characters): it
    becomes the guest's device's root when the volume has no throttle filter."""
    return "sn" + volume_id.replace("-", "")[:14] + snapshot_id.replace("-", "")[:14]


def is_volume_root(name: str | None, volume_id: str) -> bool:
    """Whether ``name`` is the root node of the volume's device: its own, or a snapshot's overlay."""
    return bool(name) and (name == node_name(volume_id) or str(name).startswith("sn" + volume_id.replace("-", "")[:14]))


async def root_node(q: QMP, volume_id: str) -> str:
    """The root node of the guest's device that has the volume (where a resize addresses it)."""
    for b in await q.execute("query-block") or []:
        name = (b.get("inserted") or {}).get("node-name")
        if is_volume_root(name, volume_id):
            return str(name)
    return node_name(volume_id)


async def chain_nodes(q: QMP, volume_id: str) -> list[str]:
    """The volume's format nodes in the guest, its active image first then each backing image
    (the throttle filter, when there is one, is stepped through)."""
    graph = await q.execute("x-debug-query-block-graph")
    drivers = {n.get("node-name"): n.get("drv") for n in await q.execute("query-named-block-nodes") or []}
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    ids = {name: ident for ident, name in names.items()}
    edges = {(e["parent"], e["name"]): e["child"] for e in graph["edges"]}
    root = await root_node(q, volume_id)
    if root not in ids:
        raise RuntimeError(f"volume {volume_id} has no block node in the guest")
    at = ids[root]
    while drivers.get(names[at]) == "throttle" and (at, "file") in edges:
        at = edges[(at, "file")]
    out = [names[at]]
    while (at, "backing") in edges:
        at = edges[(at, "backing")]
        out.append(names[at])
    return out


def device_id(volume_id: str) -> str:
    return f"volume-{volume_id}"


def root_ports() -> list[str]:
    """The command-line arguments for the root ports volumes are plugged into."""
    out = []
    for n in range(VOLUME_PORTS):
        out += ["-device", f"pcie-root-port,id=vp{n},bus=pcie.0,chassis={10 + n},slot={10 + n}"]
    return out


def blockdev(volume: dict[str, Any]) -> dict[str, Any]:
    """The ``blockdev-add`` arguments for a volume from its connection info (block storage's
    ``initialize_connection``): a qcow2 or raw file this node reads, or an NBD export of the
    storage node's qemu-storage-daemon (``nbd``: the daemon reads the qcow2, this QEMU sees raw)."""
    info = volume.get("connection_info") or {}
    kind, data = info.get("driver_volume_type"), info.get("data") or {}
    if kind == "nbd":
        return _nbd_blockdev(volume["volume_id"], data)
    if kind != "file" or not data.get("path"):
        raise RuntimeError(f"volume {volume['volume_id']} comes as {kind!r}, which this node cannot attach "
                           "(it reaches file and nbd volumes)")
    fmt = data.get("format") or "qcow2"
    if fmt not in ("qcow2", "raw"):
        raise RuntimeError(f"volume {volume['volume_id']} has the format {fmt!r}; qcow2 or raw is needed")
    return {"driver": fmt, "node-name": node_name(volume["volume_id"]), "discard": "unmap",
            "read-only": data.get("access_mode") == "ro", "cache": {"direct": False, "no-flush": False},
            "file": {"driver": "file", "filename": data["path"]}}


def _nbd_blockdev(volume_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A raw node over QEMU's NBD client; it reconnects for ``NBD_RECONNECT`` seconds when the
    export goes away (the storage node's agent restarts the daemon on the same address)."""
    if data.get("socket"):
        server: dict[str, Any] = {"type": "unix", "path": str(data["socket"])}
    elif data.get("host") and data.get("port"):
        server = {"type": "inet", "host": str(data["host"]), "port": str(data["port"])}
    else:
        raise RuntimeError(f"volume {volume_id} comes as nbd without a host and port or a socket")
    if (data.get("format") or "raw") != "raw":
        raise RuntimeError(f"volume {volume_id} is exported as {data.get('format')!r}; raw over NBD is needed")
    return {"driver": "raw", "node-name": node_name(volume_id), "discard": "unmap",
            "read-only": data.get("access_mode") == "ro", "cache": {"direct": False, "no-flush": False},
            "file": {"driver": "nbd", "server": server, "export": str(data.get("export") or f"volume-{volume_id}"),
                     "reconnect-delay": NBD_RECONNECT}}


def local_file(volume: dict[str, Any], what: str) -> tuple[str, str]:
    """(format, path) of a volume this node opens as a file; an NBD volume is refused in words
    (``what`` says what cannot be done)."""
    info = volume.get("connection_info") or {}
    if info.get("driver_volume_type") == "nbd":
        raise RuntimeError(f"volume {volume['volume_id']} is attached over NBD (its file is on the storage node): "
                           f"{what}")
    blockdev(volume)  # refuses what is not a file volume
    data = info["data"]
    return str(data.get("format") or "qcow2"), str(data["path"])


# block storage's front-end QoS keys (Cinder's, as Nova's libvirt driver reads them) -> QEMU's throttle limits
THROTTLE_LIMITS = {"total_bytes_sec": "bps-total", "read_bytes_sec": "bps-read", "write_bytes_sec": "bps-write",
                   "total_iops_sec": "iops-total", "read_iops_sec": "iops-read", "write_iops_sec": "iops-write"}
THROTTLE_VALUE_MAX = 10**15  # QEMU refuses larger limits (and bursts whose rate x length exceed it)


def throttle_group(volume_id: str) -> str:
    """The id of a volume's ``throttle-group`` object."""
    return "tg" + volume_id.replace("-", "")[:28]


def format_node(volume_id: str) -> str:
    """The node under a throttled volume's throttle filter (which keeps ``node_name``, so the
    device, block_resize and blockdev-backup address the volume the same way throttled or not)."""
    return "fmt" + volume_id.replace("-", "")[:28]


def _count(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return number if 0 < number <= THROTTLE_VALUE_MAX else 0


def throttle_limits(volume: dict[str, Any]) -> dict[str, int]:
    """QEMU's ``ThrottleLimits`` from the QoS specs in the volume's connection info
    (``data.qos_specs``, the front-end ones block storage sends).  Only what QEMU accepts is kept,
    so a volume always attaches: zeros and garbage are no limit, a burst (``_max``) only above its
    rate, a burst length only with its burst, and a total limit wins over a read or write one of
    the same kind (QEMU refuses both together)."""
    qos = ((volume.get("connection_info") or {}).get("data") or {}).get("qos_specs") or {}
    if not isinstance(qos, dict):
        return {}
    out: dict[str, int] = {}
    for key, name in THROTTLE_LIMITS.items():
        rate = _count(qos.get(key))
        if not rate:
            continue
        out[name] = rate
        burst = _count(qos.get(f"{key}_max"))
        if burst > rate:
            out[f"{name}-max"] = burst
            length = _count(qos.get(f"{key}_max_length"))
            if length and length * burst <= THROTTLE_VALUE_MAX:
                out[f"{name}-max-length"] = length
    for kind in ("bps", "iops"):
        if f"{kind}-total" in out:
            out = {k: v for k, v in out.items() if not k.startswith((f"{kind}-read", f"{kind}-write"))}
    size = _count(qos.get("size_iops_sec"))
    if size and any(k.startswith("iops") for k in out):
        out["iops-size"] = size
    return out


def throttle_args(volume: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the ``throttle-group`` object to add first, or None, and the block node to add): a volume
    with QoS limits gets a ``throttle`` filter node on top of ``node`` (whatever ``blockdev()``
    made of it), in a group of its own; one without comes back as it was."""
    limits = throttle_limits(volume)
    if not limits:
        return None, node
    vid = volume["volume_id"]
    group = {"qom-type": "throttle-group", "id": throttle_group(vid), "limits": limits}
    top = {"driver": "throttle", "node-name": node["node-name"], "throttle-group": group["id"],
           "read-only": node.get("read-only", False), "discard": "unmap",
           "file": {**node, "node-name": format_node(vid)}}
    return group, top


def device(volume: dict[str, Any]) -> dict[str, Any]:
    """The ``device_add`` arguments for a volume on its root port (the boot volume boots first)."""
    out = {"driver": "virtio-blk-pci", "id": device_id(volume["volume_id"]), "bus": f"vp{volume['slot']}",
           "drive": node_name(volume["volume_id"]), "serial": volume["volume_id"]}
    if volume.get("boot_index") == 0:
        out["bootindex"] = 1
    return out


def boot_volume(instance: dict[str, Any]) -> dict[str, Any] | None:
    """The volume the instance boots from, if it boots from one."""
    return next((v for v in instance.get("volumes") or [] if v.get("boot_index") == 0), None)


def volume_args(volumes: list[dict[str, Any]]) -> list[str]:
    """The command-line arguments that start the guest with its volumes where they were."""
    out = []
    for v in sorted(volumes, key=lambda v: v["slot"]):
        dev = ",".join(f"{k}={val}" for k, val in device(v).items() if k != "driver")
        group, node = throttle_args(v, blockdev(v))
        if group is not None:
            out += ["-object", json.dumps(group)]
        out += ["-blockdev", json.dumps(node), "-device", f"virtio-blk-pci,{dev}"]
    return out


def with_slots(volumes: list[dict[str, Any]], previous: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The volumes, each on a root port: the one it had (in ``previous``, or its own), else the
    lowest free one."""
    had = {v["volume_id"]: v["slot"] for v in previous or [] if "slot" in v}
    out, used = [], set()
    for v in volumes:
        slot = v.get("slot", had.get(v["volume_id"]))
        if slot is not None and slot not in used:
            used.add(slot)
        out.append({**v, "slot": slot})
    for v in out:
        if v["slot"] is None or not 0 <= v["slot"] < VOLUME_PORTS:
            free = [n for n in range(VOLUME_PORTS) if n not in used]
            if not free:
                raise RuntimeError(f"the server holds {VOLUME_PORTS} volumes, the most it can")
            v["slot"] = free[0]
            used.add(free[0])
    return out


class VolumeOps:
    """The QEMU driver's volume operations (mixed into ``QemuDriver``)."""

    async def attach_volume(self, instance_id: str, volume: dict[str, Any]) -> dict[str, Any]:
        """Plug ``volume`` ({volume_id, connection_info, ...}) into the instance: hot-plugged when
        the guest runs, on its command line from the next start otherwise.  Returns it with its
        root port."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            stored = self._load(instance_id)  # type: ignore[attr-defined]
            if (d / "state.save").exists():
                raise RuntimeError("the server is suspended: resume it before attaching a volume")
            volumes = stored.get("volumes") or []
            mine = next((v for v in volumes if v["volume_id"] == volume["volume_id"]), None)
            if mine is None:
                mine = with_slots([*volumes, {k: v for k, v in volume.items() if k != "slot"}])[-1]
                blockdev(mine)  # refuse what this node cannot attach before touching the guest
            if self.pid(instance_id) is not None:  # type: ignore[attr-defined]
                await self._hotplug(str(d / "qmp.sock"), mine)
            if mine not in volumes:
                stored["volumes"] = [*volumes, mine]
                self._save(stored, d)  # type: ignore[attr-defined]
        return mine

    async def _hotplug(self, sock: str, volume: dict[str, Any]) -> None:
        async with QMP(sock, timeout=30) as q:
            if await self._plugged(q, volume["volume_id"]):
                return
            group, node = throttle_args(volume, blockdev(volume))
            if group is not None:
                try:
                    await q.execute("object-add", **group)
                except QMPError as exc:
                    if "duplicate" not in str(exc).lower():  # a group left by an earlier try is reused
                        raise RuntimeError(f"QEMU refused the volume's QoS limits: {exc}") from None
            try:
                await q.execute("blockdev-add", **node)
            except QMPError as exc:
                if "Duplicate" not in str(exc):  # a node left by an earlier try is reused
                    await _unthrottle(q, volume["volume_id"])
                    raise RuntimeError(f"QEMU refused the volume: {exc}") from None
            try:
                await q.execute("device_add", **device(volume))
            except QMPError as exc:
                await _quietly(q, "blockdev-del", **{"node-name": node_name(volume["volume_id"])})
                await _unthrottle(q, volume["volume_id"])
                raise RuntimeError(f"QEMU could not plug the volume in: {exc}") from None

    @staticmethod
    async def _plugged(q: QMP, volume_id: str) -> bool:
        """Whether the guest has the volume's device (from QEMU, not from what was written down)."""
        return await guest_device(q, volume_id) is not None

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        """Unplug the volume and close its image once the guest let go of it; an instance or a
        volume that is not here is fine.  A guest that does not release it within
        ``DETACH_TIMEOUT`` keeps it: the detach fails and may be tried again."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            try:
                stored = self._load(instance_id)  # type: ignore[attr-defined]
            except LookupError:
                return
            if self.pid(instance_id) is not None:  # type: ignore[attr-defined]
                async with QMP(str(d / "qmp.sock"), timeout=DETACH_TIMEOUT + 5) as q:
                    if await self._plugged(q, volume_id):
                        if (await q.execute("query-status"))["status"] != "running":
                            raise RuntimeError("the guest is not running (paused?), so it cannot release the "
                                               "volume: unpause it first")
                        await self._unplug(q, volume_id)
                    await _quietly(q, "blockdev-del", **{"node-name": node_name(volume_id)})
                    await _unthrottle(q, volume_id)
            stored["volumes"] = [v for v in stored.get("volumes") or [] if v["volume_id"] != volume_id]
            self._save(stored, d)  # type: ignore[attr-defined]

    async def extend_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow an attached volume to ``size`` bytes: QEMU's ``block_resize`` while the guest runs
        (its virtio-blk sees the new capacity at once), the file itself otherwise."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            stored = self._load(instance_id)  # type: ignore[attr-defined]
            volume = next((v for v in stored.get("volumes") or [] if v["volume_id"] == volume_id), None)
            if volume is None:
                raise LookupError(f"volume {volume_id} is not attached to instance {instance_id}")
            fmt, path = local_file(volume, "an NBD client keeps the size it connected with, so it cannot grow "
                                           "while attached (detach it, extend it, attach it again)")
            if self.pid(instance_id) is not None:  # type: ignore[attr-defined]
                async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                    try:
                        await q.execute("block_resize", **{"node-name": await root_node(q, volume_id), "size": size})
                    except QMPError as exc:
                        raise RuntimeError(f"QEMU could not grow the volume: {exc}") from None
                return
            await _qemu_img("resize", "-q", "-f", fmt, path, str(size))

    async def snapshot_volume(self, instance_id: str, volume_id: str, snapshot_id: str, overlay: str) -> bool:
        """Block storage froze the volume's active image (it is about to take the snapshot's name):
        the guest goes on in ``overlay``, a qcow2 backed by it, from this instant, with QMP
        ``blockdev-snapshot-sync`` (mode existing) on the active format node (under the QoS
        throttle filter when there is one).  QEMU reopens the frozen image read-only by the name
        it knows it by, which still names it: block storage moves the names only after this.
        The overlay's node is named for the snapshot, so asking again is harmless.  False when
        the guest does not run (block storage then works on the files alone)."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            volume = self._attached(instance_id, volume_id)
            local_file(volume, "its storage node snapshots it through its export")
            if self.pid(instance_id) is None:  # type: ignore[attr-defined]
                return False
            node = overlay_node(volume_id, snapshot_id)
            async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                if node in {n.get("node-name") for n in await q.execute("query-named-block-nodes") or []}:
                    return True
                chain = await chain_nodes(q, volume_id)
                try:
                    await q.execute("blockdev-snapshot-sync", **{
                        "node-name": chain[0], "snapshot-file": overlay, "snapshot-node-name": node,
                        "format": "qcow2", "mode": "existing"})
                except QMPError as exc:
                    raise RuntimeError(f"QEMU could not take the snapshot: {exc}") from None
            return True

    async def merge_volume(self, instance_id: str, volume_id: str, chain: list[str], base: str | None) -> bool:
        """Take the images of ``chain`` (block storage's file names, active first) above ``base``
        out of the running guest's chain: QMP ``block-stream`` into the active format node with
        ``base``'s node as the base (the backing file string written is block storage's name for
        it, not what QEMU remembers: frozen images were renamed).  QEMU's chain must be as long
        as block storage's, else nothing is done.  A stream of an earlier try still running is
        waited for.  False when the guest does not run."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            volume = self._attached(instance_id, volume_id)
            local_file(volume, "its storage node's daemon holds it")
            if self.pid(instance_id) is None:  # type: ignore[attr-defined]
                return False
            job = "merge-" + volume_id
            async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                running = {j.get("device") for j in await q.execute("query-block-jobs") or []}
                if job not in running:
                    nodes = await chain_nodes(q, volume_id)
                    if len(nodes) != len(chain) or (base is not None and base not in chain):
                        raise RuntimeError(f"the guest's chain of volume {volume_id} has {len(nodes)} images, the "
                                           f"storage node's {len(chain)}: not merged")
                    stream: dict[str, Any] = {"job-id": job, "device": nodes[0], "auto-dismiss": True}
                    if base is not None:
                        stream.update({"base-node": nodes[chain.index(base)], "backing-file": base})
                    try:
                        await q.execute("block-stream", **stream)
                    except QMPError as exc:
                        raise RuntimeError(f"QEMU could not merge the snapshot: {exc}") from None
                done = await q.wait_event("BLOCK_JOB_COMPLETED", COPY_TIMEOUT, device=job)
                if (done.get("data") or {}).get("error"):
                    raise RuntimeError(f"merging the snapshot failed: {done['data']['error']}")
            return True

    def _attached(self, instance_id: str, volume_id: str) -> dict[str, Any]:
        stored = self._load(instance_id)  # type: ignore[attr-defined]
        volume = next((v for v in stored.get("volumes") or [] if v["volume_id"] == volume_id), None)
        if volume is None:
            raise LookupError(f"volume {volume_id} is not attached to instance {instance_id}")
        return volume  # type: ignore[no-any-return]

    @staticmethod
    async def _unplug(q: QMP, volume_id: str) -> None:
        """Ask the guest to let go of the volume until it does: a request that reaches a guest
        still booting (its ACPI not up yet) is lost, so it is sent again every UNPLUG_RETRY
        seconds, as Nova's libvirt driver retries, for at most DETACH_TIMEOUT seconds."""
        dev = await guest_device(q, volume_id) or device_id(volume_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DETACH_TIMEOUT
        while True:
            try:
                await q.execute("device_del", id=dev)
            except QMPError as exc:
                if "in the process" not in str(exc):  # an unplug already pending is fine
                    raise RuntimeError(f"QEMU refused to unplug the volume: {exc}") from None
            try:
                await q.wait_event("DEVICE_DELETED", min(UNPLUG_RETRY, max(0.1, deadline - loop.time())),
                                   device=dev)
                return
            except TimeoutError:
                if loop.time() >= deadline:
                    raise RuntimeError(f"the guest did not release the volume within {DETACH_TIMEOUT:g} s "
                                       "(is it still using the disk?)") from None
                LOG.info("the guest has not released volume %s yet: asking again", volume_id)

    async def instance_volumes(self, instance_id: str) -> list[str] | None:
        """The ids of the volumes the instance really has: the guest's devices while it runs,
        else what its next start plugs in; None when the instance is not on this node."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        try:
            stored = self._load(instance_id)  # type: ignore[attr-defined]
        except LookupError:
            return None
        if self.pid(instance_id) is None:  # type: ignore[attr-defined]
            return [v["volume_id"] for v in stored.get("volumes") or []]
        async with QMP(str(d / "qmp.sock"), timeout=10) as q:
            blocks = await q.execute("query-block") or []
        prefix = "/machine/peripheral/volume-"
        nodes = {node_name(v["volume_id"]): v["volume_id"] for v in stored.get("volumes") or []}
        return [nodes.get((b.get("inserted") or {}).get("node-name")) or b["qdev"][len(prefix):].split("/", 1)[0]
                for b in blocks if (b.get("qdev") or "").startswith(prefix)]


async def guest_device(q: QMP, volume_id: str) -> str | None:
    """The id of the guest's device that has the volume: the one plugged with it (``volume-<id>``),
    or the one its node sits under since a swap (the device keeps the id it was plugged with)."""
    mine = device_id(volume_id)
    found = None
    for b in await q.execute("query-block") or []:
        parts = (b.get("qdev") or "").split("/")
        if len(parts) < 4 or parts[2] != "peripheral":
            continue
        if is_volume_root((b.get("inserted") or {}).get("node-name"), volume_id):
            return parts[3]
        if parts[3] == mine and not b.get("inserted"):  # its medium gone: still the volume's device
            found = mine
    return found


async def _qemu_img(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("qemu-img", *args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()[:300]}")


async def _unthrottle(q: QMP, volume_id: str) -> None:
    """Remove the volume's throttle group, once no node uses it (none: nothing happens)."""
    await _quietly(q, "object-del", id=throttle_group(volume_id))


async def _quietly(q: QMP, command: str, **arguments: Any) -> None:
    try:
        await q.execute(command, **arguments)
    except QMPError:
        pass
