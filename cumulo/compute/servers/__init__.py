"""Servers on the control plane: quota, scheduling, the placement claims, and the work handed to
compute agents over the bus; the agents' reports finish each operation.

Every transitional state has an owner and a lease.  An operation starts with one conditional
UPDATE that moves the server from an allowed ``vm_state`` with no ``task_state`` into the
operation's ``task_state`` and stamps ``lease_owner``/``lease_until`` (so two operations can never
run at once on a server); the agent's report ends it.  If no report comes (an agent or controller
died) the reconciler ends it when the lease expires: a build goes to ERROR with a fault, a move is
rolled back to its source, any other operation has its ``task_state`` cleared and the server keeps
its last observed state.  Delete always wins: it frees the placement allocations at once and tells
the agent to destroy whatever it has; an agent that was away is told again when it next reports
an instance nothing owns.

Placement consumers: a server's own uuid holds what it uses where it runs.  During a move the
migration's uuid holds the source's share, exactly as Nova does, so both sides stay claimed until
the move is confirmed or reverted.
"""

from __future__ import annotations

from cumulo.compute.servers.actions import Actions
from cumulo.compute.servers.base import (
    ACTION_NAMES,
    POWER,
    SNAPSHOT_STATES,
    ServerBase,
    flavor_snapshot,
    request_id,
    resources_of,
)
from cumulo.compute.servers.build import Builds
from cumulo.compute.servers.deletion import Deletion
from cumulo.compute.servers.extras import Extras
from cumulo.compute.servers.moves import Moves
from cumulo.compute.servers.networking import Networking
from cumulo.compute.servers.reconcile import Reconciler
from cumulo.compute.servers.shelving import Shelving
from cumulo.compute.servers.volume_backed import VolumeBacked
from cumulo.compute.servers.volume_swap import VolumeSwap
from cumulo.compute.servers.volumes import VolumeAttachment, Volumes

__all__ = ["ACTION_NAMES", "POWER", "SNAPSHOT_STATES", "ServerManager", "VolumeAttachment", "flavor_snapshot",
           "request_id", "resources_of"]


class ServerManager(Builds, Actions, Moves, Shelving, Deletion, Reconciler, Networking, VolumeBacked, VolumeSwap,
                    Volumes, Extras, ServerBase):
    """Servers on the control plane, one mixin per area (see the package's modules)."""
