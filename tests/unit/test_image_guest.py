"""The guest images' upload: while guest/build-kernel.sh holds its lock the small kernel is being
built, and a watcher uploads cumulo-tiny-fast once the lock is let go."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cumulo.image import guest


def hold_lock(folder: Path) -> subprocess.Popen[bytes]:
    """A process that holds the build's lock, as the script does (flock on fd 9), until killed."""
    p = subprocess.Popen(["bash", "-c", f"exec 9>{folder / '.kernel-build.lock'}; flock 9; echo held; sleep 60"],
                         stdout=subprocess.PIPE)
    assert p.stdout and p.stdout.readline() == b"held\n"
    return p


def test_kernel_building_follows_the_lock(tmp_path: Path) -> None:
    assert not guest.kernel_building(tmp_path)  # no lock file: no build ever ran
    p = hold_lock(tmp_path)
    try:
        assert guest.kernel_building(tmp_path)
        assert guest.kernel_building(tmp_path)  # asking does not take the lock
    finally:
        p.kill()
        p.wait()
    assert not guest.kernel_building(tmp_path)  # the file stays, unlocked


async def test_the_watcher_uploads_when_the_build_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float]] = []

    async def upload_one(svc: Any, owner: str, folder: Path, name: str) -> dict[str, str]:
        calls.append((name, time.monotonic()))
        return {name: "id"}

    monkeypatch.setattr(guest, "upload_one", upload_one)
    p = hold_lock(tmp_path)
    watcher = asyncio.create_task(guest.watch_kernel_build(None, "owner", tmp_path, interval=0.05))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert calls == [] and not watcher.done()
    ended = time.monotonic()
    p.kill()
    p.wait()
    await asyncio.wait_for(watcher, 5)
    assert [c[0] for c in calls] == ["cumulo-tiny-fast"] and calls[0][1] >= ended
