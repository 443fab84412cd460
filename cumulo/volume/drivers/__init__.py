"""Volume drivers: what the volume agent does on its node's storage.  ``file.FileDriver`` keeps
volumes and snapshots as qcow2 files in one directory (Cinder's remotefs model)."""
