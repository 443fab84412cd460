"""Encryption at rest (cumulo/object/storage/crypto.py) in the object store, on real files: no
plaintext on the devices, ranges, the auditor and replicator on ciphertext, key rotation, a
missing secret, plain copies still readable, and the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from cumulo.cli.main import main
from cumulo.object.storage import ObjectStore
from cumulo.object.storage.auditor import Auditor
from cumulo.object.storage.crypto import CryptoError, KeyMaster
from cumulo.object.storage.replicator import Replicator
from cumulo.object.storage.store import walk_objects

TS = "1700000000.00000"
SECRET_TEXT = b"the quick brown fox sends a secret message "


async def _chunks(data: bytes, size: int = 7000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def put(store: ObjectStore, name: str, data: bytes, ts: str = TS) -> str:
    stored = asyncio.run(store.put("AUTH_a", "c", name, _chunks(data), timestamp=ts, metadata={},
                                   max_size=1 << 30, expected_etag=hashlib.md5(data).hexdigest()))
    return stored.etag


def read(store: ObjectStore, name: str, start: int = 0, end: int | None = None) -> bytes:
    async def go() -> bytes:
        reader = await store.get("AUTH_a", "c", name)
        assert reader is not None
        try:
            return b"".join([c async for c in reader.iter_range(start, end, chunk=1000)])
        finally:
            reader.close()
    return asyncio.run(go())


def data_files(store: ObjectStore) -> list[Path]:
    return [hash_dir / f for dev in store.ring.devices.values()
            for _, _, hash_dir, files in walk_objects(store.device_path(dev)) for f in files if f.endswith(".data")]


def open_store(tmp: Path, encryption: bool = True) -> ObjectStore:
    return ObjectStore.open(tmp, part_power=4, fsync=False, encryption=encryption)


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024 + 5])  # read whole in get(), and streamed
def test_devices_hold_ciphertext_and_reads_give_the_plaintext(tmp_path: Path, size: int) -> None:
    store = open_store(tmp_path)
    data = (SECRET_TEXT * (size // len(SECRET_TEXT) + 1))[:size]
    etag = put(store, "o", data)
    assert etag == hashlib.md5(data).hexdigest()  # clients' ETag: the plaintext's md5
    files = data_files(store)
    assert len(files) == 3
    needle = data[:10]
    for f in files:
        raw = f.read_bytes()
        assert needle not in raw and SECRET_TEXT[:16] not in raw
        assert etag.encode() not in raw  # the plaintext md5 is kept encrypted too
    assert read(store, "o") == data
    for a, b in [(0, 1), (5, 9), (15, 17), (1, size), (size - 3, size)]:
        assert read(store, "o", a, b) == data[a:b], (a, b)
    if size > 1000:
        assert read(store, "o", 65533, 200001) == data[65533:200001]
    reader = asyncio.run(store.get("AUTH_a", "c", "o"))
    assert reader is not None and reader.etag == etag and reader.stored_etag != etag
    reader.close()


def test_root_secret_file_made_once_private(tmp_path: Path) -> None:
    open_store(tmp_path)
    path = tmp_path / "object" / "root-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    open_store(tmp_path)
    assert path.read_text() == first
    assert not (tmp_path / "x" / "object" / "root-secret").exists()
    ObjectStore.open(tmp_path / "x", part_power=4, fsync=False, encryption=False)
    assert not (tmp_path / "x" / "object" / "root-secret").exists()  # off: no secret made


def test_auditor_and_replicator_work_on_ciphertext(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    data = os.urandom(5000)
    put(store, "o", data)
    result = Auditor(store).run_once()
    assert result.checked == 3 and result.quarantined == 0
    victim = data_files(store)[0]
    victim.unlink()
    Replicator(store).run_once()
    assert len(data_files(store)) == 3 and read(store, "o") == data
    # a damaged ciphertext byte is caught by the auditor
    f = data_files(store)[0]
    raw = bytearray(f.read_bytes())
    raw[100] ^= 1
    f.write_bytes(bytes(raw))
    assert Auditor(store).run_once().quarantined == 1
    assert read(store, "o") == data


def test_rotation_keeps_old_objects_readable(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    put(store, "old", b"written under secret one")
    new_id = KeyMaster.rotate(tmp_path)
    assert new_id == "2"
    # this store read the file before the rotation: it still writes with 1 and reads both
    rotated = open_store(tmp_path)
    assert rotated.crypto is not None and rotated.crypto.active == "2"
    put(rotated, "new", b"written under secret two")
    meta = [json.loads(f.read_bytes()[-8 - int.from_bytes(f.read_bytes()[-8:-4], "big"):-8])
            for f in data_files(rotated)]
    assert {m["crypto"]["key_id"] for m in meta} == {"1", "2"}
    assert read(rotated, "old") == b"written under secret one"
    assert read(store, "new") == b"written under secret two"  # an older server rereads the file
    with pytest.raises(CryptoError):  # the same wrapped key under another path does not unwrap
        rotated.crypto.decrypter("/AUTH_a/c/other", meta[0]["crypto"])


def test_a_missing_secret_is_an_error_not_a_quarantine(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    put(store, "o", b"encrypted")
    (tmp_path / "object" / "root-secret").unlink()
    plain = open_store(tmp_path, encryption=False)
    assert plain.crypto is None
    with pytest.raises(CryptoError):
        asyncio.run(plain.get("AUTH_a", "c", "o"))
    assert len(data_files(plain)) == 3  # nothing quarantined


def test_plain_and_encrypted_copies_side_by_side(tmp_path: Path) -> None:
    plain = open_store(tmp_path, encryption=False)
    put(plain, "before", SECRET_TEXT)
    assert any(SECRET_TEXT in f.read_bytes() for f in data_files(plain))
    enc = open_store(tmp_path)
    put(enc, "after", SECRET_TEXT * 2)
    assert read(enc, "before") == SECRET_TEXT
    assert read(enc, "after") == SECRET_TEXT * 2
    off_again = open_store(tmp_path, encryption=False)  # the secret is there: still decrypts
    assert read(off_again, "after") == SECRET_TEXT * 2


def test_cli_key_rotate_and_show(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "object", "key", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "no root secret yet" in run("show")
    open_store(tmp_path)
    assert "1 root secrets, active 1" in run("show")
    assert "root secret 2 is now active" in run("rotate")
    out = run("show")
    assert "2 root secrets, active 2" in out
    assert "  1\n" in out and "  2  (active)" in out
    secrets = json.loads((tmp_path / "object" / "root-secret").read_text())["secrets"]
    assert not any(v in out for v in secrets.values())
