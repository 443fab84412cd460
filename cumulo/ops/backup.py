"""Backup and restore of a whole cloud: ``cumulo backup`` and ``cumulo restore``.

What a backup holds
    The database (SQLite through its online backup API, a consistent copy taken while the cloud
    writes; ``pg_dump --format=custom`` for PostgreSQL, ``mariadb-dump --single-transaction`` for
    MariaDB/MySQL: both one snapshot transaction), the Fernet token keys, the generated secrets
    (admin-password, demo-password, metadata-secret, object/root-secret), the configuration file,
    the image stores, the object ring, the fake nodes' hypervisor state, and, as ``--include``
    says: volume data (``volumes``: the volume nodes' qcow2 files with their snapshot chains, and
    the volume backups' chunks), the QEMU nodes' instances (``instances``: each server's
    instance.json, root overlay, ephemeral, swap and config-drive disks and a suspended guest's
    saved state, with the cached bases the overlays sit on), objects (``objects``: the devices'
    object files).  Default ``images,volumes,instances``.  Not held: console logs and other logs,
    caches (image-cache), clouds.yaml and openrc (``cumulo up`` writes them again), sockets,
    status, pid and lock files.

Layout
    ``<DIR>/cumulo-backup-<UTC time>/manifest.json`` (+ ``manifest.json.sha256``) and
    ``files/<area>/<path>``, where an area is where the file goes back: ``state`` (the state
    directory), ``keys`` (the key repository), ``volumes`` and ``volume-backups`` (their paths),
    ``config``, ``database``.  A backup is first written as ``<name>.partial`` and renamed when
    complete, so a directory without that suffix is whole; ``<DIR>/.lock`` keeps two backups from
    running at once.

Consistency on a running cloud
    Files are copied in two passes around the database snapshot: every file first, then the
    database, then the files that appeared meanwhile (images, objects and volumes created while
    the first pass ran).  Image and object files never change once written (new data is a new
    file), so every image or object the database knows has its file, and a file deleted after
    the snapshot was copied before it.  A file left with no record (created after the snapshot) is
    removed by its service after a restore, as any orphan.  Volume files nobody writes are copied
    as they are; a volume file a running guest writes (QEMU holds its lock) is read with ``qemu-img
    convert -U`` into a standalone qcow2: crash-consistent at best, as after a power cut, not a
    point-in-time snapshot of the guest's disk (a volume snapshot through the Block Storage API
    first, then a backup, gives one).  An instance's disk a running guest writes is read the same
    way, each disk on its own; its root overlay stays an overlay on the same cached base (``-B``:
    only its own clusters are stored).

Incremental
    After the first backup in a DIR, a file whose sha256 and size are those of the newest backup's
    copy is not copied again: it is a hard link to that copy (so every backup directory is whole
    on its own, ``--keep`` just removes directories, and ``du`` counts shared data once).  The
    manifest says for each file whether it was copied or linked (``from``) and names the base.
    Image and object files, which never change in place, are not even read again when their size
    and modification time are those recorded.  Stored files are read-only (0400): a linked file is
    shared by several backups.

Secrets
    The secrets, key repositories and the configuration file are stored encrypted with Fernet
    (AES-128-CBC + HMAC-SHA256) under a key the operator holds (``--key-file``; made there when
    the file does not exist).  The manifest records the key's id (a hash of it), never the key.
    Secrets are encrypted again at every backup (they are small), so they are always copied.  The
    database itself is not encrypted: it holds password hashes and credential blobs, so the backup
    directory is made 0700, as the state directory is.

Restore
    Checks the manifest and the sha256 of every file before anything is written (a damaged file
    is named), refuses while a cloud runs on the state directory or database (status.json of a
    live process, the SQLite leader lock, PostgreSQL's advisory lock), refuses a state directory
    that holds a cloud unless forced, then restores: keys and secrets, configuration, the image
    stores, objects and ring, volumes, instances, the fake nodes' state, and the database last.
    A guest still running on the target's instances is refused too (QEMU outlives ``cumulo up``).
    Restored under another instances path, an overlay is rebased onto its base there (``qemu-img
    rebase -u``).  ``cumulo up`` then migrates the schema if the backup's is older and starts
    everything as it was; the guests that ran are started again as their hosts first report (a
    marker the restore leaves, taken once by compute's reconciler), the others stay SHUTOFF.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cumulo.core.config import Config

FORMAT = 1
PREFIX = "cumulo-backup-"
MANIFEST = "manifest.json"
INCLUDE_CHOICES = ("images", "volumes", "instances", "objects")
INCLUDE_DEFAULT = ("images", "volumes", "instances")
# what of an instance's directory (cumulo/compute/virt/qemu/driver.py) a backup holds: its definition,
# its disks and a suspended guest's saved state; not the console log, sockets or the pid file
INSTANCE_FILES = ("instance.json", "disk", "disk.config", "disk.eph0", "disk.swap", "disk.rescue",
                  "disk.backup", "state.save")
# the secrets `cumulo up` generates once (Controller.secret) and keeps in the state directory
SECRET_FILES = ("admin-password", "demo-password", "metadata-secret")
# tables whose ids the manifest records, by the resource the APIs show them as
RESOURCE_TABLES = {
    "projects": "identity_project", "users": "identity_user", "roles": "identity_role",
    "domains": "identity_domain", "images": "image_image", "flavors": "compute_flavor",
    "keypairs": "compute_keypair", "servers": "compute_server", "networks": "network_network",
    "subnets": "network_subnet", "ports": "network_port", "routers": "network_router",
    "floating_ips": "network_floating_ip", "security_groups": "network_security_group",
    "volumes": "volume_volume", "snapshots": "volume_snapshot", "containers": "object_container",
}
CHUNK = 1 << 20
# in the state directory while a restore writes it: a restore run again replaces what it finds
RESTORING = ".restore-incomplete"
# what compute's reconciler takes to start again the guests that ran (its RESUME_AFTER_RESTORE;
# ops may not import a service)
RESUME_AFTER_RESTORE = ".resume-guests"


def restore_incomplete(state_path: Path) -> str | None:
    """Why a cloud must not start on ``state_path``: a restore into it was cut short (its marker
    is there), so it holds part of a backup beside what was there before; or None."""
    marker = state_path / RESTORING
    if not marker.is_file():
        return None
    lines = ["?"]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines = marker.read_text().split("\n")
    source = lines[1].strip() if len(lines) > 1 and lines[1].strip() else f"<the backup {lines[0].strip()}>"
    return (f"a restore into {state_path} did not finish ({marker} is there): the state directory holds "
            f"part of a backup and must not start. Run the restore again: `cumulo --state-dir {state_path} "
            f"restore {source}` (add --key-file if the backup's secrets are encrypted), then `cumulo up`")


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why (a file, a running cloud, ...)."""


class Progress:
    """What a long operation tells as it goes: the CLI shows it as a progress bar."""

    def total(self, nbytes: int) -> None:
        """More bytes to go (the total grows as the work is found)."""

    def advance(self, nbytes: int, what: str = "") -> None:
        """Bytes done, and what is being done."""

    def say(self, line: str) -> None:
        """A line for the operator."""


@dataclass(frozen=True)
class Source:
    """One live file to back up, and where it goes back."""

    path: Path
    area: str  # state, keys, volumes, volume-backups, instances, config, database
    target: str  # its path inside the area
    kind: str  # database, keys, secrets, config, images, objects, rings, volumes, instances, compute
    secret: bool = False
    immutable: bool = False  # never changes once written: size and mtime tell it unchanged

    @property
    def key(self) -> str:
        return f"{self.area}/{self.target}"


def areas(cfg: Config) -> dict[str, Path]:
    """Where each area of a backup lives in this configuration."""
    return {"state": cfg.state_path, "keys": cfg.key_repository,
            "volumes": Path(cfg.volume.volumes_path or cfg.state_path / "volumes"),
            "volume-backups": Path(cfg.volume.backups_path or cfg.state_path / "backups"),
            "instances": Path(cfg.compute.instances_path or cfg.state_path / "instances")}


def _walk(root: Path, skip_dirs: tuple[str, ...] = ()) -> Iterator[Path]:
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            if name.startswith((".tmp-", ".tmp")) or name.endswith((".tmp", ".new")):
                continue  # a write in progress: its final name is what counts
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def sources(cfg: Config, include: tuple[str, ...]) -> tuple[list[Source], list[Source]]:
    """The files to back up: those copied before the database snapshot, and those after it
    (small state that follows the database: the ring, the fake nodes' hypervisor state)."""
    where = areas(cfg)
    state = where["state"]
    before: list[Source] = []
    for path in _walk(where["keys"]):
        before.append(Source(path, "keys", path.relative_to(where["keys"]).as_posix(), "keys", secret=True))
    for name in SECRET_FILES:
        if (state / name).is_file():
            before.append(Source(state / name, "state", name, "secrets", secret=True))
    if (state / "object" / "root-secret").is_file():
        before.append(Source(state / "object" / "root-secret", "state", "object/root-secret", "secrets", secret=True))
    if cfg.source and Path(cfg.source).is_file():
        before.append(Source(Path(cfg.source), "config", Path(cfg.source).name, "config", secret=True))
    if "images" in include:
        for store in sorted(state.glob("images*")):
            if store.is_dir():
                for path in _walk(store):
                    before.append(Source(path, "state", path.relative_to(state).as_posix(), "images", immutable=True))
    if "objects" in include:
        for path in _walk(state / "object" / "devices", skip_dirs=("tmp",)):
            before.append(Source(path, "state", path.relative_to(state).as_posix(), "objects", immutable=True))
    if "volumes" in include:
        for area in ("volumes", "volume-backups"):
            for path in _walk(where[area]):
                if path.name.startswith(".overlay-"):
                    continue  # a second name of an active image, for its running QEMU only (drivers/file.py)
                before.append(Source(path, area, path.relative_to(where[area]).as_posix(), "volumes"))
    if "instances" in include:
        before.extend(instance_sources(where["instances"]))
    after: list[Source] = []
    for path in sorted((state / "object").glob("*.ring.json")):
        after.append(Source(path, "state", path.relative_to(state).as_posix(), "rings"))
    for path in _walk(state / "fake"):
        if path.suffix == ".json":
            after.append(Source(path, "state", path.relative_to(state).as_posix(), "compute"))
    return before, after


def instance_sources(root: Path) -> list[Source]:
    """The QEMU nodes' instances under ``root`` (``<host>/<uuid>/``: definition, disks, saved
    state) and their cached bases (``<host>/_base/``, which the root disks are overlays on)."""
    out: list[Source] = []
    for path in _walk(root):
        parts = path.relative_to(root).parts
        if len(parts) != 3:
            continue
        target = "/".join(parts)
        if parts[1] == "_base":  # downloaded once, never written again
            if not path.name.endswith(".part"):
                out.append(Source(path, "instances", target, "instances", immutable=True))
        elif parts[2] in INSTANCE_FILES:
            out.append(Source(path, "instances", target, "instances"))
    return out


# ---- the key ----

def key_id(key: bytes) -> str:
    return hashlib.sha256(b"cumulo-backup-key:" + key.strip()).hexdigest()[:16]


def load_key(path: Path, create: bool) -> tuple[bytes, bool]:
    """The Fernet key in ``path``, made (0600) when it does not exist and ``create`` says so."""
    if path.exists():
        key = path.read_bytes().strip()
        try:
            if len(base64.urlsafe_b64decode(key)) != 32:
                raise ValueError
        except ValueError:
            raise BackupError(f"{path} is not a backup key (a Fernet key: 32 bytes, url-safe base64)") from None
        return key, False
    if not create:
        raise BackupError(f"key file {path} does not exist")
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key, True


# ---- writing files into a backup ----

def _sha256(path: Path, progress: Progress, what: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            progress.advance(len(chunk), what)
    return digest.hexdigest(), size


def _copy(src: Path, dest: Path, progress: Progress | None = None, what: str = "") -> tuple[str, int]:
    """Copy with the sha256 of what was written, fsync'd, read-only."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
            if progress is not None:
                progress.advance(len(chunk), what)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dest, 0o400)
    return digest.hexdigest(), size


def _held_by_qemu(path: Path) -> bool:
    """Whether a running QEMU writes this qcow2 file (qemu-img then cannot take its shared lock):
    a volume's ``*.qcow2``, or an instance's ``disk*``."""
    if not (path.suffix == ".qcow2" or path.name.startswith("disk")) or not shutil.which("qemu-img"):
        return False
    proc = subprocess.run(["qemu-img", "info", "-f", "qcow2", str(path)], capture_output=True, text=True)
    return proc.returncode != 0 and "lock" in proc.stderr


@dataclass
class Writer:
    """Puts files into one backup directory, linking those unchanged since the base backup."""

    root: Path  # the backup directory being written
    base: Path | None
    base_files: dict[str, dict[str, Any]]
    fernet: Any
    progress: Progress
    files: list[dict[str, Any]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    copied: list[int] = field(default_factory=lambda: [0, 0])
    linked: list[int] = field(default_factory=lambda: [0, 0])

    def dest(self, src: Source) -> tuple[str, Path]:
        rel = f"files/{src.area}/{src.target}"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return rel, path

    def add(self, src: Source) -> None:
        if src.key in self.done:
            return
        try:
            entry = self._add(src)
        except FileNotFoundError:  # deleted while we went (an image, an object): not in this backup
            self.dest(src)[1].unlink(missing_ok=True)
            return
        self.done.add(src.key)
        self.files.append(entry)

    def _add(self, src: Source) -> dict[str, Any]:
        rel, dest = self.dest(src)
        what = f"{src.kind}: {src.target}"
        entry: dict[str, Any] = {"path": rel, "area": src.area, "target": src.target, "kind": src.kind,
                                 "mode": src.path.stat().st_mode & 0o777, "encrypted": src.secret}
        if src.secret:  # encrypted again each time (so never linked); in the clear only when told
            data = src.path.read_bytes()
            blob = self.fernet.encrypt(data) if self.fernet is not None else data
            entry["encrypted"] = self.fernet is not None
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.chmod(dest, 0o400)
            self.progress.advance(len(blob), what)
            self.copied[0] += 1
            self.copied[1] += len(blob)
            return {**entry, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(), "from": None}
        st = src.path.stat()
        entry["mtime_ns"] = st.st_mtime_ns
        prev = self.base_files.get(src.key)
        if prev is not None and self.base is not None and not prev.get("encrypted"):
            same = None
            if src.immutable and prev.get("mtime_ns") == st.st_mtime_ns and prev["size"] == st.st_size:
                same = prev["sha256"]  # never changes in place: not read again
                self.progress.advance(st.st_size, what)
            elif not _held_by_qemu(src.path):
                digest, size = _sha256(src.path, self.progress, what)
                self.progress.total(size)  # read once to compare, and once more if it changed
                if digest == prev["sha256"] and size == prev["size"]:
                    same = digest
            base_file = self.base / prev["path"]
            if same is not None and base_file.is_file():
                os.link(base_file, dest)
                self.linked[0] += 1
                self.linked[1] += prev["size"]
                return {**entry, "size": prev["size"], "sha256": same, "from": prev.get("from") or self.base.name}
        if src.kind in ("volumes", "instances") and _held_by_qemu(src.path):
            # a running guest writes it: a crash-consistent copy through QEMU's own reader, standalone
            # for a volume, and for an instance's overlay one on the same base (only its own clusters)
            tmp = dest.with_name(f".convert-{dest.name}")
            proc = subprocess.run(["qemu-img", "convert", "-q", "-U", "-O", "qcow2", *_backing_args(src.path),
                                   str(src.path), str(tmp)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise BackupError(f"qemu-img convert of {src.path} failed: {proc.stderr.strip()[:300]}")
            digest, size = _copy(tmp, dest)
            tmp.unlink()
            self.progress.advance(st.st_size, what)
            entry["method"] = "qemu-img convert -U (in use: crash-consistent)"
        else:
            digest, size = _copy(src.path, dest, self.progress, what)
        self.copied[0] += 1
        self.copied[1] += size
        return {**entry, "size": size, "sha256": digest, "from": None}


def _backing(path: Path) -> tuple[str, str] | None:
    """The backing file of a qcow2 file (as recorded in it) and its format, or None."""
    proc = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    info = json.loads(proc.stdout)
    if info.get("format") != "qcow2" or not info.get("backing-filename"):
        return None
    return str(info["backing-filename"]), str(info.get("backing-filename-format") or "raw")


def _backing_args(path: Path) -> list[str]:
    found = _backing(path) if path.suffix != ".qcow2" else None  # a volume is copied standalone
    return ["-B", found[0], "-F", found[1]] if found else []


# ---- the database ----

def _plain_url(url: str) -> Any:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    backend = u.get_backend_name()
    return u.set(drivername="mysql" if backend == "mariadb" else backend)


def database_backend(url: str) -> str:
    backend = _plain_url(url).get_backend_name()
    return {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}.get(backend, backend)


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    u = _plain_url(url)
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return ["-d", u.set(password=None).render_as_string(hide_password=False)], env


def _mysql_args(url: str) -> tuple[list[str], dict[str, str]]:
    u = _plain_url(url)
    env = {**os.environ}
    if u.password:
        env["MYSQL_PWD"] = str(u.password)  # not on the command line, where ps shows it
    args = ["-h", u.host or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
    return args, {**env, "_DB": u.database or ""}


def sqlite_snapshot(path: str, dest: Path) -> None:
    """A consistent copy of a live SQLite database: the online backup API copies it in one step
    inside one read transaction (WAL lets the cloud go on writing meanwhile)."""
    src = sqlite3.connect(path, timeout=30)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)  # pages=-1: all at once, one snapshot
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            out.close()
    finally:
        src.close()


def dump_database(cfg: Config, dest_dir: Path) -> tuple[Path, dict[str, Any]]:
    url = cfg.database_url
    backend = database_backend(url)
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if backend == "sqlite":
        dest = dest_dir / "cumulo.db"
        path = _plain_url(url).database
        if not path or not Path(path).exists():
            raise BackupError(f"no database at {path}: nothing to back up (has the cloud ever run?)")
        sqlite_snapshot(path, dest)
        return dest, {"backend": "sqlite", "method": "sqlite3 online backup API"}
    if backend == "postgresql":
        if not shutil.which("pg_dump"):
            raise BackupError("pg_dump is not installed (apt-get install postgresql-client)")
        dest = dest_dir / "cumulo.pgdump"
        args, env = _pg_args(url)
        proc = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(dest),
                               *args], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise BackupError(f"pg_dump failed: {proc.stderr.strip()[:500]}")
        return dest, {"backend": "postgresql", "method": "pg_dump --format=custom"}
    if backend == "mysql":
        tool = shutil.which("mariadb-dump") or shutil.which("mysqldump")
        if not tool:
            raise BackupError("mariadb-dump is not installed (apt-get install mariadb-client)")
        dest = dest_dir / "cumulo.sql"
        args, env = _mysql_args(url)
        name = env.pop("_DB")
        with open(dest, "wb") as out:
            proc = subprocess.run([tool, "--single-transaction", "--routines", "--triggers", "--hex-blob",
                                   *args, name], stdout=out, stderr=subprocess.PIPE, env=env)
        if proc.returncode != 0:
            raise BackupError(f"{Path(tool).name} failed: {proc.stderr.decode(errors='replace').strip()[:500]}")
        return dest, {"backend": "mysql", "method": f"{Path(tool).name} --single-transaction"}
    raise BackupError(f"cannot back up a {backend} database")


def sqlite_contents(path: Path) -> tuple[str | None, dict[str, int], dict[str, list[str]]]:
    """The schema revision, every table's row count and the ids of the resources, from a snapshot."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        counts = {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        revision = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        ids: dict[str, list[str]] = {}
        for resource, table in RESOURCE_TABLES.items():
            if table in tables:
                cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
                if "id" in cols:
                    where = " WHERE deleted_at IS NULL" if "deleted_at" in cols else ""
                    ids[resource] = sorted(str(r[0]) for r in con.execute(f'SELECT id FROM "{table}"{where}'))
        return revision, counts, ids
    finally:
        con.close()


def live_revision(cfg: Config) -> str | None:
    import asyncio

    from cumulo.core.db import Database

    async def go() -> str | None:
        database = Database(cfg.database_url)
        try:
            return await database.revision()
        finally:
            await database.close()

    return asyncio.run(go())


# ---- backups in a directory ----

def backups_in(root: Path) -> list[Path]:
    """The complete backups in ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and not p.name.endswith(".partial")
                  and (p / MANIFEST).is_file())


def read_manifest(backup: Path) -> dict[str, Any]:
    path = backup / MANIFEST
    if not path.is_file():
        raise BackupError(f"{backup} is not a backup: no {MANIFEST}")
    raw = path.read_bytes()
    check = backup / (MANIFEST + ".sha256")
    if check.is_file() and check.read_text().split()[0] != hashlib.sha256(raw).hexdigest():
        raise BackupError(f"{path}: corrupted (its sha256 is not the one in {check.name})")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BackupError(f"{path}: corrupted ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this cumulo reads {FORMAT}")
    return manifest


def resolve(path: Path) -> Path:
    """A backup directory, or the newest backup in a directory of backups."""
    if (path / MANIFEST).is_file():
        return path
    found = backups_in(path)
    if not found:
        raise BackupError(f"no backup in {path}")
    return found[-1]


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup is being written to {root}") from None
        yield
    finally:
        os.close(fd)


def _cumulo_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cumulo")
    except PackageNotFoundError:
        return "unknown"


def backup(cfg: Config, root: Path, include: tuple[str, ...] = INCLUDE_DEFAULT, key: bytes | None = None,
           keep: int | None = None, full: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Back the running (or stopped) cloud up into a new directory in ``root``; returns its manifest.
    ``key`` (a Fernet key) encrypts the secrets; None stores them in the clear (``--no-encrypt``)."""
    progress = progress or Progress()
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(root):
        for stale in root.glob(f"{PREFIX}*.partial"):  # a backup that died half-way
            shutil.rmtree(stale, ignore_errors=True)
        existing = backups_in(root)
        base = None if full or not existing else existing[-1]
        base_files: dict[str, dict[str, Any]] = {}
        if base is not None:
            with contextlib.suppress(BackupError):
                base_files = {f"{f['area']}/{f['target']}": f for f in read_manifest(base)["files"]}
            if not base_files:
                base = None
        name = PREFIX + now.strftime("%Y%m%dT%H%M%S%fZ")
        partial = root / f"{name}.partial"
        partial.mkdir(mode=0o700)
        try:
            return _write_backup(cfg, root, partial, name, now, started, include, key, keep, base, base_files,
                                 progress)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)  # nothing half-written stays behind
            raise


def _write_backup(cfg: Config, root: Path, partial: Path, name: str, now: dt.datetime, started: float,
                  include: tuple[str, ...], key: bytes | None, keep: int | None, base: Path | None,
                  base_files: dict[str, dict[str, Any]], progress: Progress) -> dict[str, Any]:
    from cryptography.fernet import Fernet

    fernet = Fernet(key) if key is not None else None
    writer = Writer(partial, base, base_files, fernet, progress)
    before, _after = sources(cfg, include)
    progress.total(sum(_size(s.path) for s in before))
    for src in before:  # the first pass
        writer.add(src)
    progress.say("database snapshot")
    db_file, db_info = dump_database(cfg, partial / "files" / "database")
    os.chmod(db_file, 0o400)
    progress.total(db_file.stat().st_size)
    digest, size = _sha256(db_file, progress, "database")
    writer.files.append({"path": db_file.relative_to(partial).as_posix(), "area": "database",
                         "target": db_file.name, "kind": "database", "mode": 0o600, "encrypted": False,
                         "size": size, "sha256": digest, "from": None})
    writer.copied[0] += 1
    writer.copied[1] += size
    revision, counts, ids = (None, {}, {})
    if db_info["backend"] == "sqlite":
        revision, counts, ids = sqlite_contents(db_file)
    else:
        revision = live_revision(cfg)
    # the second pass: what appeared during the first (images, objects, volumes made meanwhile),
    # and the state that follows the database
    again, after = sources(cfg, include)
    late = [s for s in again if s.key not in writer.done and not s.secret] + after
    progress.total(sum(_size(s.path) for s in late))
    for src in late:
        writer.add(src)
    manifest: dict[str, Any] = {
        "format": FORMAT, "name": name, "cumulo_version": _cumulo_version(), "schema_revision": revision,
        "created": now.isoformat().replace("+00:00", "Z"), "host": socket.gethostname(),
        "state_dir": str(cfg.state_path), "config_file": cfg.source or None, "database": db_info,
        "areas": {area: str(path) for area, path in areas(cfg).items()},
        "include": list(include), "incremental": base is not None, "base": base.name if base else None,
        "copied": {"files": writer.copied[0], "bytes": writer.copied[1]},
        "linked": {"files": writer.linked[0], "bytes": writer.linked[1]},
        "encryption": ({"cipher": "fernet", "key_id": key_id(key)} if key is not None else
                       {"cipher": None, "note": "secrets stored in the clear (--no-encrypt)"}),
        "tables": counts, "resources": ids, "files": writer.files,
        "seconds": round(time.monotonic() - started, 3),
    }
    raw = json.dumps(manifest, indent=1, sort_keys=False).encode()
    (partial / MANIFEST).write_bytes(raw)
    (partial / (MANIFEST + ".sha256")).write_text(f"{hashlib.sha256(raw).hexdigest()}  {MANIFEST}\n")
    _fsync_dir(partial)
    os.rename(partial, root / name)
    _fsync_dir(root)
    if keep:
        for old in backups_in(root)[:-keep]:
            shutil.rmtree(old)
            progress.say(f"removed {old.name} (--keep {keep})")
    return manifest


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- restore ----

def check(backup: Path, manifest: dict[str, Any], progress: Progress | None = None) -> None:
    """Every file of the manifest is there with its size and sha256; the first that is not is named."""
    progress = progress or Progress()
    progress.total(sum(f["size"] for f in manifest["files"]))
    for f in manifest["files"]:
        path = backup / f["path"]
        if not path.is_file():
            raise BackupError(f"{path}: missing from the backup")
        if path.stat().st_size != f["size"]:
            raise BackupError(f"{path}: corrupted (size {path.stat().st_size}, the manifest says {f['size']})")
        digest, _ = _sha256(path, progress, f"checking {f['target']}")
        if digest != f["sha256"]:
            raise BackupError(f"{path}: corrupted (its sha256 is not the manifest's)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(cfg: Config) -> str | None:
    """Why a cloud is running on this state directory or database, or None."""
    status = cfg.state_path / "status.json"
    if status.is_file():
        with contextlib.suppress(ValueError, KeyError, OSError):
            pid = int(json.loads(status.read_text())["pid"])
            if _pid_alive(pid):
                return f"a cloud is running on {cfg.state_path} (pid {pid}, {status}): stop it first (`cumulo status`)"
    backend = database_backend(cfg.database_url)
    if backend == "sqlite":
        path = _plain_url(cfg.database_url).database
        if path and Path(path + ".leader").exists():
            fd = os.open(path + ".leader", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                return f"a cloud holds the leader lock of {path}: stop it first"
            finally:
                os.close(fd)
    elif backend == "postgresql" and shutil.which("psql"):
        from cumulo.core.lease import PG_KEY

        args, env = _pg_args(cfg.database_url)
        proc = subprocess.run(["psql", "-XAtq", *args, "-c", f"SELECT pg_try_advisory_lock({PG_KEY})"],
                              capture_output=True, text=True, env=env)
        if proc.returncode == 0 and proc.stdout.strip() == "f":
            return "a cloud holds the leader lease of the PostgreSQL database: stop every controller first"
    return None


def holds_cloud(cfg: Config) -> list[str]:
    """What of a cloud is already in the state directory (a restore would replace it)."""
    where = areas(cfg)
    found = []
    db = _plain_url(cfg.database_url).database if database_backend(cfg.database_url) == "sqlite" else None
    if db and Path(db).exists():
        found.append(db)
    for path in (where["keys"], cfg.state_path / "images", where["volumes"], cfg.state_path / "object",
                 where["instances"]):
        if path.is_dir() and any(path.iterdir()):
            found.append(str(path))
    backend = database_backend(cfg.database_url)
    if backend == "postgresql" and shutil.which("psql"):
        args, env = _pg_args(cfg.database_url)
        proc = subprocess.run(["psql", "-XAtq", *args, "-c", "SELECT to_regclass('public.alembic_version')"],
                              capture_output=True, text=True, env=env)
        if proc.returncode == 0 and proc.stdout.strip():
            found.append(f"the PostgreSQL database {_plain_url(cfg.database_url).database}")
    elif backend == "mysql" and (shutil.which("mariadb") or shutil.which("mysql")):
        args, env = _mysql_args(cfg.database_url)
        name = env.pop("_DB")
        proc = subprocess.run([shutil.which("mariadb") or "mysql", *args, "-N", "-e",
                               f"SHOW TABLES FROM `{name}` LIKE 'alembic_version'"], capture_output=True, text=True,
                              env=env)
        if proc.returncode == 0 and proc.stdout.strip():
            found.append(f"the database {name}")
    return found


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from cumulo.core.db import MIGRATIONS

    return {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def restore(backup: Path, cfg: Config, key: bytes | None = None, force: bool = False,
            progress: Progress | None = None, source: str | None = None) -> dict[str, Any]:
    """Restore ``backup`` into the state directory and database of ``cfg`` (see the module's docstring)."""
    from cryptography.fernet import Fernet, InvalidToken

    progress = progress or Progress()
    manifest = read_manifest(backup)
    revision = manifest.get("schema_revision")
    if revision and revision not in _known_revisions():
        raise BackupError(f"the backup's schema revision {revision} is unknown to this cumulo (a newer "
                          f"version made it: {manifest.get('cumulo_version')}): restore with that version")
    encrypted = [f for f in manifest["files"] if f.get("encrypted")]
    fernet = None
    if encrypted:
        want = (manifest.get("encryption") or {}).get("key_id")
        if key is None:
            raise BackupError(f"the backup's secrets are encrypted (key id {want}): give its --key-file")
        if want and key_id(key) != want:
            raise BackupError(f"that key is not the backup's (key id {key_id(key)}, the backup's is {want})")
        fernet = Fernet(key)
    backend = database_backend(cfg.database_url)
    if backend != manifest["database"]["backend"]:
        raise BackupError(f"the backup holds a {manifest['database']['backend']} database and this cloud is "
                          f"configured for {backend} ([database] url)")
    why = running(cfg) or guests_running(areas(cfg)["instances"])
    if why:
        raise BackupError(why)
    check(backup, manifest, progress)
    there = holds_cloud(cfg)
    marker = cfg.state_path / RESTORING
    if there and marker.exists() and not force:  # what an interrupted restore left: replaced, as it was meant to be
        progress.say(f"a restore into {cfg.state_path} did not finish ({marker}): replacing what it left")
        force = True
    if there and not force:
        raise BackupError(f"a cloud is already there ({', '.join(there)}): restore into an empty state "
                          f"directory and database, or --force to replace it")
    where = {**areas(cfg), "config": cfg.state_path}
    if force:
        for path in (where["keys"], where["volumes"], where["volume-backups"], where["instances"],
                     cfg.state_path / "fake",
                     cfg.state_path / "object", *cfg.state_path.glob("images*")):
            shutil.rmtree(path, ignore_errors=True)
    cfg.state_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(cfg.state_path, 0o700)
    marker.write_text(f"{manifest['name']}\n{source or backup.resolve()}\n")  # restore_incomplete() names it
    order = ["keys", "secrets", "config", "rings", "images", "objects", "volumes", "instances", "compute",
             "database"]
    old_instances = (manifest.get("areas") or {}).get("instances")
    restored: dict[str, int] = {}
    config_note = None
    for kind in order:
        for f in (f for f in manifest["files"] if f["kind"] == kind):
            src = backup / f["path"]
            if kind == "database":
                _restore_database(cfg, src, manifest["database"]["backend"])
            else:
                target = where[f["area"]] / f["target"]
                if kind == "config":  # back in the state directory if it was there, else beside it
                    was = Path(manifest.get("config_file") or "cumulo.toml")
                    if was == Path(manifest["state_dir"]) / "cumulo.toml":
                        target = cfg.state_path / "cumulo.toml"
                    else:
                        target = cfg.state_path / f"restored-{was.name}"
                        config_note = f"the configuration file (it was {was}) is restored as {target}: put it back"
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if f.get("encrypted"):
                    assert fernet is not None
                    try:
                        data = fernet.decrypt(src.read_bytes())
                    except InvalidToken:
                        raise BackupError(f"{src}: cannot be decrypted with that key") from None
                    _write_atomic(target, data, f.get("mode", 0o600) & 0o700)
                else:
                    tmp = target.with_name(f".tmp-restore-{target.name}")
                    tmp.unlink(missing_ok=True)
                    _copy(src, tmp)
                    os.chmod(tmp, f.get("mode", 0o600) & 0o777 | 0o200)
                    if kind == "instances" and old_instances and Path(old_instances) != where["instances"]:
                        _rebase(tmp, Path(old_instances), where["instances"])
                    os.replace(tmp, target)
            progress.advance(0, f"restored {f['target']}")
            restored[kind] = restored.get(kind, 0) + 1
    # the guests that ran start again when their hosts first report (compute's reconciler takes it)
    (cfg.state_path / RESUME_AFTER_RESTORE).write_text(f"restored from {manifest['name']}\n")
    marker.unlink()
    _fsync_dir(cfg.state_path)
    if config_note:
        progress.say(config_note)
    return {"backup": manifest["name"], "restored": restored, "schema_revision": revision,
            "state_dir": str(cfg.state_path)}


def guests_running(instances: Path) -> str | None:
    """Why the instances directory is not free to replace: a QEMU process of it still runs (they
    outlive ``cumulo up`` and its agents), or None."""
    alive = []
    for pid_file in sorted(instances.glob("*/*/qemu.pid")):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if pid_file.parent.name.encode() in cmdline:
                alive.append(f"{pid_file.parent.name} (pid {pid})")
    if alive:
        return (f"guests of {instances} still run: {', '.join(alive[:5])}{' ...' if len(alive) > 5 else ''}; "
                f"stop them first (`openstack server stop`, before stopping the cloud)")
    return None


def _rebase(disk: Path, old_root: Path, new_root: Path) -> None:
    """An instance's overlay restored under another instances path: its backing file (a cached
    base under the old path) is named again under the new one (the same bytes: no data moves)."""
    if not disk.name.startswith(".tmp-restore-disk") or not shutil.which("qemu-img"):
        return
    found = _backing(disk)
    if found is None or not found[0].startswith(f"{old_root}/"):
        return
    moved = new_root / Path(found[0]).relative_to(old_root)
    proc = subprocess.run(["qemu-img", "rebase", "-q", "-u", "-F", found[1], "-b", str(moved), str(disk)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"qemu-img rebase of {disk} onto {moved} failed: {proc.stderr.strip()[:300]}")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".tmp-restore-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode or 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _restore_database(cfg: Config, dump: Path, backend: str) -> None:
    url = cfg.database_url
    if backend == "sqlite":
        from cumulo.core.db import private_sqlite_file

        path = Path(_plain_url(url).database)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-restore-{path.name}")
        tmp.unlink(missing_ok=True)
        _copy(dump, tmp)
        os.chmod(tmp, 0o600)
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, path)
        private_sqlite_file(path)
    elif backend == "postgresql":
        args, env = _pg_args(url)
        # the database as the dump has it, and nothing else: a newer schema's tables would stay behind --clean
        reset = "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"
        proc = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", *args, "-c", reset],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise BackupError(f"psql could not empty the database: {proc.stderr.strip()[:500]}")
        proc = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                               "--single-transaction", *args, str(dump)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise BackupError(f"pg_restore failed: {proc.stderr.strip()[:500]}")
    elif backend == "mysql":
        tool = shutil.which("mariadb") or shutil.which("mysql")
        if not tool:
            raise BackupError("the mariadb client is not installed (apt-get install mariadb-client)")
        args, env = _mysql_args(url)
        name = env.pop("_DB")
        reset = f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4;"
        proc = subprocess.run([tool, *args, "-e", reset], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise BackupError(f"could not empty the database: {proc.stderr.strip()[:500]}")
        with open(dump, "rb") as fin:
            proc2 = subprocess.run([tool, *args, name], stdin=fin, capture_output=True, env=env)
        if proc2.returncode != 0:
            raise BackupError(f"loading the dump failed: {proc2.stderr.decode(errors='replace').strip()[:500]}")
    else:
        raise BackupError(f"cannot restore a {backend} database")


def scratch_dir(prefix: str = "cumulo-verify-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
