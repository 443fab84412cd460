"""The volume agent's backup work (``VolumeAgent`` inherits it): back a volume up into the backup
store, restore a backup into a volume's file, delete a backup's objects, check an imported one.
Like all of the agent's work it never opens the database, is idempotent, and its answer goes
back to ``volume.controller`` with the ``ctx`` it came with (the result: what was stored)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cumulo.volume.drivers.backup import BackupEngine, BackupError, DirectoryStore
from cumulo.volume.drivers.file import FileDriver
from cumulo.volume.drivers.object_backup import FallbackStore, ObjectBackupStore

GiB = 1024**3


def backup_engine(cfg: Any) -> BackupEngine:
    """The backup engine over ``[volume] backups_path`` (default ``<state_dir>/backups``); with
    object storage in this process, backups go there instead (``drivers/object_backup.py``) and
    this directory is only read, for the backups made before."""
    return BackupEngine(DirectoryStore(Path(cfg.volume.backups_path or cfg.state_path / "backups")))


class BackupAgentMixin:
    driver: FileDriver
    backups: BackupEngine | None = None  # set by file_agent; an agent without one refuses backups
    # object storage's service when it runs in this process: backups go to the project's account
    objects: Any = None

    def _engine(self, args: dict[str, Any]) -> BackupEngine:
        if self.backups is None:
            raise BackupError("this volume agent has no backup store")
        if self.objects is not None and args.get("project_id"):
            store = ObjectBackupStore(self.objects, asyncio.get_running_loop(), args["project_id"])
            return BackupEngine(FallbackStore(store, self.backups.store))
        return self.backups

    async def _backup_volume(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("snapshot_id"):
            path = self.driver.snapshot_path(args["snapshot_id"])
            if not path.exists():
                raise LookupError(f"snapshot {args['snapshot_id']} is not on this node")
        else:
            path = self.driver.volume_path(args["volume_id"])
            if not path.exists():
                raise LookupError(f"volume {args['volume_id']} is not on this node")
        parent = (args["parent_container"], args["parent_id"]) if args.get("parent_id") else None
        result = await asyncio.to_thread(
            self._engine(args).backup, path, backup_id=args["backup_id"], volume_id=args["volume_id"],
            container=args["container"], parent=parent, force_share=bool(args.get("force_share")))
        return asdict(result)

    async def _restore_backup(self, args: dict[str, Any]) -> dict[str, Any]:
        target = self.driver.volume_path(args["volume_id"])
        written = await asyncio.to_thread(self._engine(args).restore, args["container"], args["backup_id"], target,
                                          int(args["size"]) * GiB)
        return {"data_bytes": written}

    async def _delete_backup(self, args: dict[str, Any]) -> dict[str, Any]:
        removed = await asyncio.to_thread(self._engine(args).delete, args["container"], args["backup_id"])
        return {"objects_removed": removed}

    async def _import_backup(self, args: dict[str, Any]) -> dict[str, Any]:
        if not await asyncio.to_thread(self._engine(args).exists, args["container"], args["backup_id"]):
            raise BackupError(f"backup {args['backup_id']} is not in the backup store (container "
                              f"{args['container']})")
        return {}
