"""Object storage's storage layer: object files replicated over a ring of devices.

This is the part of object storage below the API: it keeps the bytes of every object, a number
of times over, on directories called devices, and repairs them in the background.  The API calls
``ObjectStore.put/get/delete``; the container listings live elsewhere (the API's database).

Devices and layout
    A device is a directory, normally one disk's mount point.  By default (``ObjectStore.open``)
    there are three, ``<state_dir>/object/devices/d1..d3``, each its own zone.  An object lives at

        <device>/objects/<partition>/<suffix>/<hash>/<timestamp>.data

    as in Swift: ``hash`` is the md5 of ``/<account>/<container>/<object>`` wrapped in a
    cluster-wide secret prefix and suffix (kept in the ring file; never change them once objects
    exist), ``partition`` is the top ``part_power`` bits of that hash, ``suffix`` its last three
    hex digits.  A deleted object is a tombstone ``<timestamp>.ts`` in the same place.  Only the
    newest file of an object is kept.  Writes go to ``<device>/tmp/`` first.

    The object's metadata (its name, ETag, size, timestamp and user metadata) is a JSON trailer
    at the end of the ``.data`` file, followed by 8 bytes: the trailer's length and the magic
    ``CUMO``.  A trailer rather than extended attributes because user xattrs are not available on
    every filesystem (tmpfs before Linux 6.6), and rather than a ``.meta`` file beside it so that a
    write is one file: one fsync, one rename.  The body starts at byte 0, so a range read is a
    plain pread.  ``tail -c`` of a file shows its metadata.

The ring
    ``<state_dir>/object/object.ring.json`` maps each of the 2**part_power partitions to
    ``replicas`` devices (its primaries).  Each device has an id, a region, a zone, a weight and a
    name (its directory); an ``address`` (ip:port) is kept for multi-node, empty meaning this node.
    A rebalance gives every partition distinct devices, spread over as many zones as there are,
    each device holding a share of partitions in proportion to its weight, and keeps every
    assignment still valid, so adding a device moves roughly its share and no more.  To retire a
    device, set its weight to 0 (mark it out), rebalance, let replication empty it, then remove
    it.  Swift's min_part_hours is not kept: do not rebalance twice before replication settles.
    Change it with ``cumulo object ring create|add|set-weight|remove|rebalance|show``; a running
    server takes a changed ring file within a second (``ObjectStore.ring`` looks at the file's
    stat at most once a second), without a restart, and its replicator then moves the data.  A
    ring file of another partition power or hash prefix/suffix is refused (logged; the ring in
    use stays), since it would look for every object in the wrong partition.

    Replacing a failed disk (Operations Guide, chapter 11): ``ring add`` the new device,
    ``set-weight <failed> 0``, ``rebalance``, ``remove <failed>`` (it now holds no partition), and
    the replicator fills the new device from the other replicas; ``cumulo object status`` shows
    the replicas per object coming back to full.  A disk that is merely replaced by an empty one
    under the same name needs no ring change: the replicator refills it.

Writes and the quorum
    A PUT streams the body to one temp file per replica while computing its md5; when the body
    is complete (and its ETag, size and Content-Length agree) each file gets its trailer, is
    fsync'd and renamed into place, and the directory is fsync'd.  The PUT succeeds when a quorum
    (replicas // 2 + 1: 2 of 3) of the copies are in place; otherwise every copy is removed and
    the caller gets QuorumError (a 503).  An oversized body, a wrong ETag or a short body leaves
    no copy anywhere.  A DELETE writes tombstones the same way.

Handoffs
    When a primary cannot be written (its directory gone bad, its disk full), the copy goes to a
    handoff: another device, preferably in a zone the primaries do not use, chosen in the same
    order by every writer.  Reads look at the primaries first and at the handoffs when the
    primaries do not all have the object.

Replication
    The replicator (``Replicator.run_once``, every 30 s by default in ``ObjectNode``) walks every
    partition present on the node's devices.  For each object it finds the newest file anywhere,
    copies it to each primary that misses it or holds an older version, and once all primaries
    have it removes it from the handoffs.  A device replaced by an empty one is filled back this
    way.  Copies are checked against their md5 while copied; a bad source is quarantined.
    Tombstones are kept for ever (Swift reclaims them after a week: not done yet).

Auditing and quarantine
    The auditor (``Auditor.run_once``) reads every ``.data`` file at a bounded rate, recomputes
    the md5 and compares it with the trailer's ETag.  A copy that fails, or whose trailer cannot be
    read, is moved whole to ``<device>/quarantined/objects/<hash>`` for an operator to look at;
    the replicator then restores the object from a sound replica.  Reads check too: an object up
    to 1 MiB is verified before ``get`` returns it (a bad copy is quarantined and the next replica
    served, so a client never sees damaged bytes); a larger one is verified as it streams, and a
    copy that fails at the end is quarantined and the stream cut (ChecksumError), as Swift does.

Encryption at rest
    With ``[object] encryption`` (on by default) bodies are stored AES-256-CTR encrypted, each
    with its own key wrapped by one derived from a root secret in ``<state_dir>/object/root-secret``
    and the object's path; the trailer's ``etag`` is then the ciphertext's md5 and its ``crypto``
    says how to decrypt.  See ``crypto.py`` (keys, rotation with ``cumulo object key rotate``).

Status: ``cumulo object status`` shows each device's fill, objects, tombstones and quarantined
copies, and how many partitions have all, some or none of their replicas.
"""

from cumulo.object.storage.ring import Device, Ring, RingBuilder, RingError
from cumulo.object.storage.store import (
    ChecksumError,
    EtagMismatch,
    ObjectReader,
    ObjectStore,
    QuorumError,
    ShortBody,
    StoredObject,
    TooLarge,
)

__all__ = ["ChecksumError", "Device", "EtagMismatch", "ObjectReader", "ObjectStore", "QuorumError", "Ring",
           "RingBuilder", "RingError", "ShortBody", "StoredObject", "TooLarge"]
