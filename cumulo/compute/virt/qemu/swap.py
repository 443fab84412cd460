"""Swapping the volume under a running guest's disk (Nova's swap volume, which block storage asks
for when it migrates or retypes an in-use volume).

A virtio-blk device cannot change its drive in place, so the copy goes the way libvirt's
``blockCopy`` + pivot does it for Nova: the new volume's node is added (``blockdev-add``), a
``blockdev-mirror`` (sync full) copies the old node into it while the guest keeps writing (the
mirror sends the guest's writes to both), and once the job is ``ready`` ``job-complete`` pivots:
QEMU puts the new node where the old one was under the device.  The old node is then closed.
The guest sees the same disk (its serial stays the old volume's until the next start), and the
instance's ``instance.json`` names the new volume on the same root port, so a later start plugs
the new volume there.  A failed copy cancels the job and closes the new node: the guest keeps the
old volume.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cumulo.compute.virt.qemu.qmp import QMP, QMPError
from cumulo.compute.virt.qemu.volumes import _quietly, _unthrottle, blockdev, node_name, root_node, throttle_args

LOG = logging.getLogger(__name__)
SWAP_TIMEOUT = 3600.0  # seconds a whole-volume copy may take before the swap gives up


def swap_job(volume_id: str) -> str:
    return "swap-" + volume_id


async def mirror_onto(q: QMP, old_volume_id: str, new_volume: dict[str, Any]) -> None:
    """Copy the old volume's node into the new volume's and pivot the guest's device onto it."""
    new_id = new_volume["volume_id"]
    group, node = throttle_args(new_volume, blockdev(new_volume))
    if group is not None:
        try:
            await q.execute("object-add", **group)
        except QMPError as exc:
            if "duplicate" not in str(exc).lower():
                raise RuntimeError(f"QEMU refused the new volume's QoS limits: {exc}") from None
    try:
        await q.execute("blockdev-add", **node)
    except QMPError as exc:
        if "Duplicate" not in str(exc):
            await _unthrottle(q, new_id)
            raise RuntimeError(f"QEMU refused the new volume: {exc}") from None
    job = swap_job(old_volume_id)
    try:
        await q.execute("blockdev-mirror", **{"job-id": job, "device": await root_node(q, old_volume_id),
                                              "target": node_name(new_id), "sync": "full"})
        ready = await _job_event(q, job, "BLOCK_JOB_READY")
        if ready["event"] != "BLOCK_JOB_READY":
            raise RuntimeError(f"the copy to the new volume ended before it was ready: "
                               f"{(ready.get('data') or {}).get('error') or 'no error given'}")
        await q.execute("job-complete", id=job)
        done = await _job_event(q, job, "BLOCK_JOB_COMPLETED")
        if (done.get("data") or {}).get("error"):
            raise RuntimeError(f"the pivot to the new volume failed: {done['data']['error']}")
    except (QMPError, TimeoutError, RuntimeError) as exc:
        await _quietly(q, "job-cancel", id=job, force=True)
        await _quietly(q, "blockdev-del", **{"node-name": node_name(new_id)})
        await _unthrottle(q, new_id)
        raise RuntimeError(f"swapping the volume failed (the guest keeps the old one): {exc}") from None
    await _quietly(q, "blockdev-del", **{"node-name": node_name(old_volume_id)})
    await _unthrottle(q, old_volume_id)


async def _job_event(q: QMP, job: str, wanted: str) -> dict[str, Any]:
    """``wanted`` for the job, or the job's end (completed or cancelled) if that comes first."""
    names = (wanted, "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SWAP_TIMEOUT
    while True:
        for event in list(q.events):
            if event["event"] in names and (event.get("data") or {}).get("device") == job:
                q.events.remove(event)
                return event
        if loop.time() > deadline:
            raise TimeoutError(f"no {wanted} of {job} within {SWAP_TIMEOUT:g} s")
        try:  # reads what QEMU sends (events are kept in q.events) for up to a second
            await q.wait_event("CUMULO_NEVER", 1.0)
        except TimeoutError:
            pass


class SwapOps:
    """The QEMU driver's swap (mixed into ``QemuDriver``)."""

    async def swap_volume(self, instance_id: str, old_volume_id: str, new_volume: dict[str, Any]) -> None:
        """Put ``new_volume`` ({volume_id, connection_info}) where ``old_volume_id`` is, copying it
        while the guest runs.  Done already (the new one there, the old one gone) is fine."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            stored = self._load(instance_id)  # type: ignore[attr-defined]
            volumes = stored.get("volumes") or []
            old = next((v for v in volumes if v["volume_id"] == old_volume_id), None)
            if old is None:
                if any(v["volume_id"] == new_volume["volume_id"] for v in volumes):
                    return
                raise LookupError(f"volume {old_volume_id} is not attached to instance {instance_id}")
            if self.pid(instance_id) is None:  # type: ignore[attr-defined]
                raise RuntimeError("the guest is not running: a volume is swapped while it runs")
            new = {**{k: v for k, v in new_volume.items() if k not in ("slot", "boot_index")},
                   "slot": old["slot"], "boot_index": old.get("boot_index")}
            blockdev(new)  # refuse what this node cannot open before touching the guest
            async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                await mirror_onto(q, old_volume_id, new)
            stored["volumes"] = [new if v is old else v for v in volumes]
            self._save(stored, d)  # type: ignore[attr-defined]
        LOG.info("instance %s: volume %s swapped for %s", instance_id, old_volume_id, new["volume_id"])
