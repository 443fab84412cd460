"""Backups in object storage: ``cumulo backup --to-container C``, ``cumulo restore
--from-container C`` and ``cumulo backup verify --from-container C``.

A backup is written locally first, exactly as ``cumulo backup --to DIR`` writes it (the directory
of backups is then also the cache the next backup is incremental on), then copied into container
``C`` of an object store reached through a clouds.yaml entry (``--os-cloud``, default ``cumulo``:
this cloud's own admin entry in ``<state-dir>/clouds.yaml``, or one of another cloud in the usual
clouds.yaml places).  Each backup is the objects ``<backup-name>/<its path>`` (the same layout as
on disk); ``manifest.json`` goes last, so a backup without it in the container is incomplete and
never restored.  A file the local backup linked to the previous backup (unchanged) is copied
inside the object store from that backup's object (``X-Copy-From``) when the container holds it,
so an incremental backup sends over the network only what changed, and each backup in the
container stands on its own (``--keep`` there removes whole backups).

A restore or verify downloads the backup (the newest in the container, or the one named) into a
scratch directory and goes on as from a local one: the manifest and every checksum first.  A
backup kept only in the cloud's own object storage is lost with that cloud: keep a copy in
another cloud's (``--os-cloud``) or on another disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from cumulo.ops.backup import CHUNK, MANIFEST, PREFIX, BackupError, Progress, read_manifest
from cumulo.ops.clouds import token_and_endpoint

TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def cloud_entry(name: str, state_dir: Path | None) -> dict[str, Any]:
    from cumulo.ops.canary import clouds_files, find_cloud

    try:
        return find_cloud(name, clouds_files(state_dir))
    except LookupError as exc:
        raise BackupError(f"{exc}: give --os-cloud with a cloud of a clouds.yaml") from None


class Container:
    """One container of an object store, reached with a clouds.yaml entry's password auth."""

    def __init__(self, cloud: dict[str, Any], name: str) -> None:
        if not name or "/" in name:
            raise BackupError(f"{name!r} is not a container name")
        self.name = name
        self.http = httpx.Client(timeout=TIMEOUT, verify=cloud.get("verify", True))
        self.token, endpoint = token_and_endpoint(self.http, cloud, "object-store", BackupError)
        self.url = f"{endpoint.rstrip('/')}/{urllib.parse.quote(name)}"

    def _call(self, method: str, path: str = "", ok: tuple[int, ...] = (200, 201, 202, 204), **kw: Any) -> Any:
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        url = self.url + ("/" + urllib.parse.quote(path) if path else "")
        try:
            r = self.http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise BackupError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code not in ok:
            raise BackupError(f"{method} {url}: {r.status_code} {r.text[:200]}")
        return r

    def ensure(self) -> None:
        self._call("PUT", ok=(201, 202, 204))

    def names(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        marker = ""
        while True:
            r = self._call("GET", ok=(200, 204, 404), params={"format": "json", "prefix": prefix, "marker": marker})
            page = r.json() if r.status_code == 200 and r.content else []
            if not page:
                return out
            out += [item["name"] for item in page]
            marker = out[-1]

    def backups(self) -> list[str]:
        """The complete backups in the container (their manifest is there), oldest first."""
        return sorted(n.split("/", 1)[0] for n in self.names(PREFIX) if n.endswith(f"/{MANIFEST}")
                      and n.count("/") == 1)

    def put(self, name: str, path: Path) -> None:
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        self._call("PUT", name, ok=(201,), content=chunks(),
                   headers={"Content-Length": str(size), "Content-Type": "application/octet-stream",
                            "ETag": _md5(path)})

    def copy(self, name: str, source: str) -> None:
        self._call("PUT", name, ok=(201,), content=b"", headers={
            "X-Copy-From": f"{urllib.parse.quote(self.name)}/{urllib.parse.quote(source)}", "Content-Length": "0"})

    def get(self, name: str, dest: Path, progress: Progress) -> None:
        url = f"{self.url}/{urllib.parse.quote(name)}"
        try:
            with self.http.stream("GET", url, headers={"X-Auth-Token": self.token}) as r:
                if r.status_code != 200:
                    raise BackupError(f"GET {url}: {r.status_code}")
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    for chunk in r.iter_bytes(CHUNK):
                        fh.write(chunk)
                        progress.advance(len(chunk), f"download {name.split('/', 1)[-1]}")
        except httpx.HTTPError as exc:
            raise BackupError(f"GET {url}: {type(exc).__name__}: {exc}") from None

    def delete(self, name: str) -> None:
        self._call("DELETE", name, ok=(204, 404))

    def close(self) -> None:
        self.http.close()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def push(backup: Path, container: Container, keep: int | None = None,
         progress: Progress | None = None) -> dict[str, Any]:
    """Copy the local backup ``backup`` into the container (manifest last); returns what was sent."""
    progress = progress or Progress()
    manifest = read_manifest(backup)
    name = manifest["name"]
    container.ensure()
    there = set(container.backups())
    held: dict[str, set[str]] = {}
    sent = [0, 0]
    copied = [0, 0]
    progress.total(sum(f["size"] for f in manifest["files"]))
    for f in manifest["files"]:
        base = f.get("from")
        if base and base in there:
            if base not in held:
                held[base] = set(container.names(f"{base}/"))
            if f"{base}/{f['path']}" in held[base]:
                container.copy(f"{name}/{f['path']}", f"{base}/{f['path']}")  # inside the object store
                copied[0] += 1
                copied[1] += f["size"]
                progress.advance(f["size"], f"copy {f['target']}")
                continue
        container.put(f"{name}/{f['path']}", backup / f["path"])
        sent[0] += 1
        sent[1] += f["size"]
        progress.advance(f["size"], f"upload {f['target']}")
    container.put(f"{name}/{MANIFEST}.sha256", backup / f"{MANIFEST}.sha256")
    container.put(f"{name}/{MANIFEST}", backup / MANIFEST)  # last: the backup is whole in the container
    removed = []
    if keep:
        for old in container.backups()[:-keep]:
            container.delete(f"{old}/{MANIFEST}")  # first: no longer listed as a whole backup
            for obj in container.names(f"{old}/"):
                container.delete(obj)
            removed.append(old)
    return {"backup": name, "container": container.name, "uploaded": {"files": sent[0], "bytes": sent[1]},
            "copied_in_store": {"files": copied[0], "bytes": copied[1]}, "removed": removed}


def pull(container: Container, dest_root: Path, name: str | None = None,
         progress: Progress | None = None) -> Path:
    """Download a backup of the container (the newest, or ``name``) into ``dest_root/<name>``."""
    progress = progress or Progress()
    found = container.backups()
    if not found:
        raise BackupError(f"no complete backup in container {container.name}")
    if name is None:
        name = found[-1]
    elif name not in found:
        raise BackupError(f"no complete backup {name} in container {container.name} (there: "
                          f"{', '.join(found[-5:])})")
    dest = dest_root / name
    dest.mkdir(parents=True, mode=0o700)
    try:
        for obj in container.names(f"{name}/"):
            rel = obj.split("/", 1)[1]
            target = dest / rel
            if ".." in Path(rel).parts or rel.startswith("/"):
                raise BackupError(f"object {obj} names a path outside the backup")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            container.get(obj, target, progress)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest
