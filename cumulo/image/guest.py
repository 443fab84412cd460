"""Uploads the cumulo-tiny guest (built by guest/build.sh) as public images, once.

``cumulo-tiny-kernel`` (aki) and ``cumulo-tiny-ramdisk`` (ari) are the direct-boot pair;
``cumulo-tiny`` (qcow2) is the bootable disk and names the pair in ``kernel_id``/``ramdisk_id`` so
a compute driver can take the fast path.  An image whose data is unchanged is left alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select

from cumulo.image.models import Image
from cumulo.image.service import Caller, ImageService

LOG = logging.getLogger(__name__)
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "guest" / "out"


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


async def upload_guest(svc: ImageService, owner: str, folder: Path = DEFAULT_DIR) -> dict[str, str]:
    """Returns {image name: id}; an empty dict when the guest has not been built."""
    files = {"cumulo-tiny-kernel": ("vmlinuz", "aki", "aki"), "cumulo-tiny-ramdisk": ("initrd.img", "ari", "ari"),
             "cumulo-tiny": ("cumulo-tiny.qcow2", "qcow2", "bare")}
    if not all((folder / f).is_file() for f, _, _ in files.values()):
        LOG.info("no guest build in %s (run `make guest`): cumulo-tiny images not uploaded", folder)
        return {}
    admin = Caller(owner, True, "")
    ids: dict[str, str] = {}
    for name, (filename, disk_format, container_format) in files.items():
        path = folder / filename
        checksum = md5(path)
        async with svc.db.session() as s:
            current = (await s.execute(select(Image).where(Image.name == name, Image.owner == owner,
                                                           Image.status == "active"))).scalars().all()
        same = [i for i in current if i.checksum == checksum]
        if same:
            ids[name] = same[0].id
            continue
        props = {"os_distro": "cumulo-tiny", "hw_rng_model": "virtio"}
        if name == "cumulo-tiny":
            props.update(kernel_id=ids["cumulo-tiny-kernel"], ramdisk_id=ids["cumulo-tiny-ramdisk"],
                         kernel_args="console=ttyS0 quiet panic=5")
        image = await svc.create(admin, {"name": name, "disk_format": disk_format, "container_format": container_format,
                                         "visibility": "public", "min_ram": 96 if name == "cumulo-tiny" else 0,
                                         "properties": props})
        await svc.upload(image, admin, chunks(path))
        for old in current:  # an older build of the same image steps aside
            await svc.delete(old, admin)
        ids[name] = image.id
        LOG.info("uploaded %s (%s, %d bytes) as image %s", name, disk_format, path.stat().st_size, image.id)
    return ids
