"""Uploads the cumulo-tiny guests (built by guest/build.sh and guest/build-kernel.sh) as public
images, once.

``cumulo-tiny-kernel`` (aki) and ``cumulo-tiny-ramdisk`` (ari) are the direct-boot pair;
``cumulo-tiny`` (qcow2) is the bootable disk and names the pair in ``kernel_id``/``ramdisk_id`` so
a compute driver can take the fast path.  ``cumulo-tiny-fast`` is the same guest on the small
kernel (``cumulo-tiny-fast-kernel``: an ELF that QEMU enters by PVH, everything built in) with the
initramfs without modules (``cumulo-tiny-fast-ramdisk``); its disk is cumulo-tiny's, which boots the
Debian kernel when the pair is not used.  The small kernel takes minutes to build, so it may come
after the cloud starts: while its build runs, a task uploads it when it ends.  An image whose data
is unchanged is left alone.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select

from cumulo.image.models import Image
from cumulo.image.service import Caller, ImageService

LOG = logging.getLogger(__name__)
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "guest" / "out"
# image name -> (kernel, ramdisk, disk) file names in the build folder, and the disk's min_ram
GUESTS = {"cumulo-tiny": (("vmlinuz", "initrd.img", "cumulo-tiny.qcow2"), 96),
          "cumulo-tiny-fast": (("vmlinux-small", "initrd-small.img", "cumulo-tiny.qcow2"), 64)}
KERNEL_ARGS = "console=ttyS0 quiet panic=5"
WATCH_INTERVAL = 10.0
_watchers: set[asyncio.Task[None]] = set()


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            yield block


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def kernel_building(folder: Path) -> bool:
    """Whether guest/build-kernel.sh is running on ``folder`` (it holds a lock on this file)."""
    try:
        with open(folder / ".kernel-build.lock", "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return False


async def upload_guest(svc: ImageService, owner: str, folder: Path = DEFAULT_DIR) -> dict[str, str]:
    """Returns {image name: id} of the guests built in ``folder``; an empty dict when none is."""
    ids: dict[str, str] = {}
    for name in GUESTS:
        ids.update(await upload_one(svc, owner, folder, name))
    if not ids:
        LOG.info("no guest build in %s (run `make guest`): cumulo-tiny images not uploaded", folder)
    if kernel_building(folder):
        LOG.info("the small guest kernel is being built (%s): cumulo-tiny-fast follows when it is ready",
                 folder / "kernel-build.log")
        task = asyncio.get_running_loop().create_task(watch_kernel_build(svc, owner, folder))
        _watchers.add(task)
        task.add_done_callback(_watchers.discard)
    return ids


async def watch_kernel_build(svc: ImageService, owner: str, folder: Path,
                             interval: float = WATCH_INTERVAL) -> None:
    """Uploads cumulo-tiny-fast once the small kernel's build (running now) has ended."""
    while kernel_building(folder):
        await asyncio.sleep(interval)
    try:
        if not await upload_one(svc, owner, folder, "cumulo-tiny-fast"):
            LOG.warning("the small guest kernel's build ended without a result: see %s", folder / "kernel-build.log")
    except Exception:
        LOG.exception("uploading cumulo-tiny-fast failed")


async def upload_one(svc: ImageService, owner: str, folder: Path, guest: str) -> dict[str, str]:
    """Uploads one guest's kernel, ramdisk and disk; {} when its build is not (all) there."""
    (kernel, ramdisk, disk), min_ram = GUESTS[guest]
    files = {f"{guest}-kernel": (kernel, "aki", "aki"), f"{guest}-ramdisk": (ramdisk, "ari", "ari"),
             guest: (disk, "qcow2", "bare")}
    if not all((folder / f).is_file() for f, _, _ in files.values()):
        return {}
    admin = Caller(owner, True, "")
    ids: dict[str, str] = {}
    for name, (filename, disk_format, container_format) in files.items():
        path = folder / filename
        checksum = md5(path)
        async with svc.db.session() as s:
            current = (await s.execute(select(Image).where(Image.name == name, Image.owner == owner,
                                                           Image.status == "active"))).scalars().all()
        props = {"os_distro": "cumulo-tiny", "hw_rng_model": "virtio"}
        if name == guest:
            props.update(kernel_id=ids[f"{guest}-kernel"], ramdisk_id=ids[f"{guest}-ramdisk"],
                         kernel_args=KERNEL_ARGS)
        # the same data, and for the disk the same kernel and ramdisk (cumulo-tiny-fast's disk
        # stays while its kernel changes)
        same = [i for i in current if i.checksum == checksum
                and all((i.properties or {}).get(k) == v for k, v in props.items())]
        if same:
            ids[name] = same[0].id
            continue
        image = await svc.create(admin, {"name": name, "disk_format": disk_format, "container_format": container_format,
                                         "visibility": "public", "min_ram": min_ram if name == guest else 0,
                                         "properties": props})
        await svc.upload(image, admin, chunks(path))
        for old in current:  # an older build of the same image steps aside
            await svc.delete(old, admin)
        ids[name] = image.id
        LOG.info("uploaded %s (%s, %d bytes) as image %s", name, disk_format, path.stat().st_size, image.id)
    return ids
