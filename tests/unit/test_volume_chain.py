"""The file driver's snapshot chains on real qcow2 files (qemu-img, qemu-io): snapshots freeze the
active image and the volume goes on in an overlay; deleting one merges it into its children;
every snapshot keeps reading what it read, the chain stays clean (``qemu-img check``), a step
run again after a crash finishes the work, and a volume's delete leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cumulo.volume.drivers import file as file_driver
from cumulo.volume.drivers.file import FileDriver, backing_file

MiB = 1024**2


def write(path: Path, pattern: int, offset_mib: int) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset_mib}M 1M", str(path)], check=True,
                   capture_output=True)


def read(path: Path) -> bytes:
    """The first byte of each of the first 4 MiB the image shows (its chain resolved)."""
    reads = [a for i in range(4) for a in ("-c", f"read -v {i}M 1")]
    out = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", *reads, str(path)], check=True, capture_output=True,
                         text=True).stdout
    return bytes(int(line.split()[1], 16) for line in out.splitlines() if line.startswith("00"))


def check(path: Path) -> None:
    subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(path)], check=True)


@pytest.fixture
def driver(tmp_path: Path) -> FileDriver:
    return FileDriver(tmp_path / "node")


async def test_snapshots_form_a_chain_and_keep_their_data(driver: FileDriver) -> None:
    vol = await driver.create_volume("v", 1)
    write(vol, 0x11, 0)
    s1 = await driver.create_snapshot("s1", "v")
    assert backing_file(vol) == "snapshot-s1.qcow2" and backing_file(s1) is None
    write(vol, 0x22, 1)
    s2 = await driver.create_snapshot("s2", "v")
    write(vol, 0x33, 2)
    assert [p.name for p in driver.chain(vol)] == ["volume-v.qcow2", "snapshot-s2.qcow2", "snapshot-s1.qcow2"]
    assert (read(s1), read(s2), read(vol)) == (b"\x11\0\0\0", b"\x11\x22\0\0", b"\x11\x22\x33\0")
    assert await driver.create_snapshot("s2", "v") == s2  # twice is harmless
    assert driver.snapshots() == ["s1", "s2"] and list(driver.volumes()) == ["v"]

    # a volume from a snapshot is a standalone copy of the chain up to it
    copy = await driver.create_volume("c", 2, s2)
    assert backing_file(copy) is None and read(copy) == b"\x11\x22\0\0"

    # deleting the older snapshot merges it into its child; the newer one and the volume read as before
    await driver.delete_snapshot("s1")
    assert not s1.exists() and backing_file(s2) is None and backing_file(vol) == "snapshot-s2.qcow2"
    assert (read(s2), read(vol)) == (b"\x11\x22\0\0", b"\x11\x22\x33\0")
    await driver.delete_snapshot("s1")  # twice is harmless
    # and the last one into the volume itself
    await driver.delete_snapshot("s2")
    assert backing_file(vol) is None and read(vol) == b"\x11\x22\x33\0"
    check(vol)
    await driver.delete_volume("v")
    await driver.delete_volume("c")
    assert list(driver.path.iterdir()) == []


async def test_deleting_a_middle_snapshot_and_the_volume(driver: FileDriver) -> None:
    vol = await driver.create_volume("v", 1)
    for n, sid in enumerate(("a", "b", "c")):
        write(vol, 0x10 + n, n)
        await driver.create_snapshot(sid, "v")
    write(vol, 0x40, 3)
    await driver.delete_snapshot("b")
    assert backing_file(driver.snapshot_path("c")) == "snapshot-a.qcow2"
    assert (read(driver.snapshot_path("a")), read(driver.snapshot_path("c")), read(vol)) == (
        b"\x10\0\0\0", b"\x10\x11\x12\0", b"\x10\x11\x12\x40")
    for path in driver.chain(vol):
        check(path)
    await driver.delete_volume("v")  # the whole chain goes with it
    assert list(driver.path.iterdir()) == []


async def test_a_snapshot_taken_again_after_a_crash_finishes(driver: FileDriver) -> None:
    """Killed after the frozen image got the snapshot's name but before the overlay took the
    volume's: the next try puts the overlay in place; nothing was lost meanwhile."""
    vol = await driver.create_volume("v", 1)
    write(vol, 0x11, 0)
    os.link(vol, driver.snapshot_path("s"))  # the state a crash between the two steps leaves
    assert driver.chain(vol) == [vol] and read(vol) == b"\x11\0\0\0"
    await driver.create_snapshot("s", "v")
    assert backing_file(vol) == "snapshot-s.qcow2" and not os.path.samefile(vol, driver.snapshot_path("s"))
    write(vol, 0x22, 1)
    assert (read(driver.snapshot_path("s")), read(vol)) == (b"\x11\0\0\0", b"\x11\x22\0\0")


async def test_a_running_guest_is_switched_first_and_merged_online(driver: FileDriver,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``switch`` the guest's QEMU takes the overlay before any name moves (it is told the
    overlay's hidden name); with ``merge`` a snapshot in a running chain is merged by the guest
    (only when some process holds the volume's image: here the test says one does)."""
    vol = await driver.create_volume("v", 1)
    seen: list[tuple[str, bool]] = []

    async def switch(overlay: Path) -> bool:
        seen.append((overlay.name, backing_file(vol) is None))  # the volume's name not moved yet
        return True

    await driver.create_snapshot("s", "v", switch=switch)
    assert seen == [(".overlay-v.s.qcow2", True)]
    overlay = driver.path / ".overlay-v.s.qcow2"
    assert os.path.samefile(overlay, vol) and backing_file(vol) == "snapshot-s.qcow2"
    await driver.create_snapshot("t", "v", switch=switch)
    assert not overlay.exists()  # frozen by the second snapshot: its hidden name goes

    merged: list[tuple[str, list[str], str | None]] = []

    async def held(path: Path) -> bool:
        return True
    monkeypatch.setattr(file_driver, "_held", held)

    async def merge(volume_id: str, chain: list[str], base: str | None) -> bool:
        merged.append((volume_id, chain, base))
        subprocess.run(["qemu-img", "rebase", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base or "", str(vol)],
                       check=True)  # what the guest's block-stream does to the active image
        return True

    await driver.delete_snapshot("s", merge)
    assert merged == [("v", ["volume-v.qcow2", "snapshot-t.qcow2", "snapshot-s.qcow2"], None)]
    # the guest's chain is the volume alone now; snapshot t kept its own data and lost its backing
    assert backing_file(vol) is None and backing_file(driver.snapshot_path("t")) is None
    await driver.delete_snapshot("t")
    await driver.delete_volume("v")
    assert list(driver.path.iterdir()) == []


async def test_a_snapshot_cut_after_the_guests_switch_is_finished_by_the_repair(driver: FileDriver) -> None:
    """Killed after the guest went on in the overlay but before the names moved (and the guest
    stopped since): the overlay holds its writes, so the repair makes it the volume; an empty
    overlay nobody holds is only removed."""
    vol = await driver.create_volume("v", 1)
    write(vol, 0x11, 0)
    overlay = driver.path / ".overlay-v.s.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "1G"], check=True)
    write(overlay, 0x22, 1)  # the guest's write after the switch
    subprocess.run(["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b", "snapshot-s.qcow2", "-F", "qcow2",
                    str(overlay)], check=True)
    empty = driver.path / ".overlay-v.t.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "snapshot-t.qcow2", "-F", "qcow2",
                    str(empty), "1G"], check=True)
    assert await driver.repair() == ["s"]
    assert not empty.exists() and not driver.snapshot_path("t").exists()
    assert backing_file(vol) == "snapshot-s.qcow2" and os.path.samefile(vol, overlay)
    assert (read(driver.snapshot_path("s")), read(vol)) == (b"\x11\0\0\0", b"\x11\x22\0\0")
    assert await driver.repair() == []
