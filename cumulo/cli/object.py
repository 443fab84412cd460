"""``cumulo object``: the object storage ring and the state of this node's devices.

    cumulo object ring create     a new ring (part power, replicas, devices d1..dN)
    cumulo object ring add NAME   add a device (a directory under <state_dir>/object/devices)
    cumulo object ring set-weight NAME W   change a device's weight (0 marks it out)
    cumulo object ring remove NAME         drop a device that holds no partition
    cumulo object ring rebalance  reassign partitions after a change
    cumulo object ring show       the ring: devices, their partitions, the balance
    cumulo object status          each device's fill, objects, quarantined copies; replica health
    cumulo object key rotate      a new root secret for encryption at rest (old ones still decrypt)
    cumulo object key show        the root secrets' ids and which one encrypts new writes

The ring file is <state_dir>/object/object.ring.json; a running server takes a changed one within
a second (no restart), and its replicator moves the data to the new assignment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cumulo.core import config as configmod


def example(*lines: str) -> str:
    """A command's epilog: its examples, kept one a line (click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _state(ctx: click.Context) -> Path:
    root = ctx.find_root().obj or {}
    try:
        cfg = configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    return Path(cfg.state_path) / "object"


def _ring_file(ctx: click.Context) -> Path:
    return _state(ctx) / "object.ring.json"


def _builder(ctx: click.Context) -> Any:
    from cumulo.object.storage import RingBuilder, RingError

    try:
        return RingBuilder.load(_ring_file(ctx))
    except RingError as exc:
        raise click.ClickException(f"{exc} (make one with `cumulo object ring create`)") from None


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("object")
def object_group() -> None:
    """Object storage on this machine (its ring and devices)."""


@object_group.group()
def ring() -> None:
    """The object ring: which devices hold which partitions."""


@ring.command("create", epilog=example('cumulo object ring create --part-power 12 --replicas 3 --devices 3',
    'cumulo object ring create --replicas 1 --devices 1 --force   # a one-copy test ring'))
@click.option("--part-power", default=10, show_default=True, help="2**N partitions (0..20).")
@click.option("--replicas", default=3, show_default=True, help="Copies of each object (1..8).")
@click.option("--devices", default=3, show_default=True,
              help="Devices d1..dN to add, one zone each (0: add them yourself, then rebalance).")
@click.option("--force", is_flag=True, help="Replace an existing ring (its objects are then misplaced).")
@click.pass_context
def ring_create(ctx: click.Context, part_power: int, replicas: int, devices: int, force: bool) -> None:
    """Make a new ring file."""
    from cumulo.object.storage import RingBuilder, RingError

    path = _ring_file(ctx)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; --force replaces it (and loses where objects are)")
    try:
        builder = RingBuilder(part_power, replicas)
        for i in range(1, devices + 1):
            builder.add_device(f"d{i}", zone=i)
        if devices >= replicas:
            builder.rebalance()
    except RingError as exc:
        raise _fail(exc) from None
    builder.save(path)
    for dev in builder.devices.values():
        (path.parent / "devices" / dev.name).mkdir(parents=True, exist_ok=True)
    click.echo(f"ring {path}: 2**{part_power} partitions, {replicas} replicas, {devices} devices"
               + ("" if devices >= replicas else "; add devices, then `cumulo object ring rebalance`"))


@ring.command("add", epilog=example('cumulo object ring add d4 --zone 2 --weight 200 && cumulo object ring rebalance',
    'cumulo object ring add d5 --address 10.0.0.12:8080   # a device on another node'))
@click.argument("name")
@click.option("--region", default=1, show_default=True)
@click.option("--zone", default=1, show_default=True)
@click.option("--weight", default=100.0, show_default=True)
@click.option("--address", default="", help="ip:port of the node serving it (empty: this node).")
@click.pass_context
def ring_add(ctx: click.Context, name: str, region: int, zone: int, weight: float, address: str) -> None:
    """Add device NAME (a directory under <state_dir>/object/devices); rebalance afterwards."""
    from cumulo.object.storage import RingError

    builder = _builder(ctx)
    try:
        dev = builder.add_device(name, region=region, zone=zone, weight=weight, address=address)
    except RingError as exc:
        raise _fail(exc) from None
    builder.save(_ring_file(ctx))
    if not address:
        (_state(ctx) / "devices" / name).mkdir(parents=True, exist_ok=True)
    click.echo(f"added device {dev.id} {name} (region {region}, zone {zone}, weight {weight:g}); "
               "now `cumulo object ring rebalance`")


@ring.command("set-weight", epilog=example(
    'cumulo object ring set-weight d2 0 && cumulo object ring rebalance   # drain d2'))
@click.argument("name")
@click.argument("weight", type=float)
@click.pass_context
def ring_set_weight(ctx: click.Context, name: str, weight: float) -> None:
    """Set device NAME's weight (0 marks it out); rebalance afterwards."""
    from cumulo.object.storage import RingError

    builder = _builder(ctx)
    try:
        builder.set_weight(builder.find(name).id, weight)
    except RingError as exc:
        raise _fail(exc) from None
    builder.save(_ring_file(ctx))
    click.echo(f"device {name} weight {weight:g}; now `cumulo object ring rebalance`")


@ring.command("remove", epilog=example('cumulo object ring remove d2 && cumulo object ring rebalance'))
@click.argument("name")
@click.pass_context
def ring_remove(ctx: click.Context, name: str) -> None:
    """Remove device NAME; one still holding partitions is marked out (weight 0) instead."""
    from cumulo.object.storage import RingError

    builder = _builder(ctx)
    try:
        builder.remove_device(builder.find(name).id)
        message = f"removed device {name}"
    except RingError as exc:
        message = str(exc)
    builder.save(_ring_file(ctx))
    click.echo(message)


@ring.command("rebalance", epilog=example('cumulo object ring rebalance'))
@click.pass_context
def ring_rebalance(ctx: click.Context) -> None:
    """Reassign partitions to match the devices and weights; replication then moves the data."""
    from cumulo.object.storage import RingError

    builder = _builder(ctx)
    try:
        moved = builder.rebalance()
    except RingError as exc:
        raise _fail(exc) from None
    builder.save(_ring_file(ctx))
    click.echo(f"{moved} partition replicas moved; balance within {builder.balance():.2f}%")


@ring.command("show", epilog=example('cumulo object ring show'))
@click.pass_context
def ring_show(ctx: click.Context) -> None:
    """Print the ring's devices and how many partitions each holds."""
    builder = _builder(ctx)
    held = builder.partitions_of()
    click.echo(f"{_ring_file(ctx)}: 2**{builder.part_power} partitions, {builder.replicas} replicas, "
               f"balance within {builder.balance():.2f}%")
    click.echo(f"  {'id':>3} {'name':12} {'region':>6} {'zone':>4} {'weight':>8} {'partitions':>10}  address")
    for dev in sorted(builder.devices.values(), key=lambda d: d.id):
        click.echo(f"  {dev.id:>3} {dev.name:12} {dev.region:>6} {dev.zone:>4} {dev.weight:>8g} "
                   f"{held.get(dev.id, 0):>10}  {dev.address or '(this node)'}")


@object_group.command("status", short_help="Each device's fill and objects; the replicas' health",
                      epilog=example('cumulo object status', 'cumulo --state-dir /srv/cumulo object status'))
@click.pass_context
def status(ctx: click.Context) -> None:
    """Each device's fill, objects and quarantined copies, and how many objects have all their
    replicas on their primaries (reads the files; takes a while on a full node)."""
    from cumulo.object.storage import ObjectStore, Ring, RingError
    from cumulo.object.storage.store import newest, walk_objects

    state = _state(ctx)
    try:
        ring_ = Ring.load(state / "object.ring.json")
    except RingError as exc:
        raise click.ClickException(f"{exc} (object storage makes its ring on first use)") from None
    store = ObjectStore(state / "devices", ring_)
    usage = store.usage()
    click.echo(f"object storage in {store.root}: {usage['replicas']} replicas (quorum {usage['quorum']}), "
               f"2**{usage['part_power']} partitions")
    for name, d in usage["devices"].items():
        fill = ""
        if d.get("disk_total"):
            fill = f", disk {100 * (1 - d['disk_free'] / d['disk_total']):.0f}% full"
        present = "" if d["present"] else "  MISSING"
        click.echo(f"  {name:10s} zone {d['zone']} weight {d['weight']:g}: {d['objects']} objects, "
                   f"{d['tombstones']} tombstones, {d['bytes_used']} bytes, {d['quarantined']} quarantined"
                   f"{fill}{present}")
    # object hash -> (its partition, the devices holding its newest file)
    where: dict[str, tuple[int, dict[int, str]]] = {}
    for dev in ring_.devices.values():
        for part, hash_hex, _, files in walk_objects(store.device_path(dev)):
            top = newest(files)
            if top:
                where.setdefault(hash_hex, (part, {}))[1][dev.id] = top
    health: dict[int, int] = {}
    on_handoffs = 0
    for part, held in where.values():
        if part >= ring_.partitions:
            continue
        best = max(held.values(), key=lambda f: f.rsplit(".", 1)[0])
        primaries = {d.id for d in ring_.get_part_nodes(part)}
        n = sum(1 for dev_id, f in held.items() if dev_id in primaries and f == best)
        health[n] = health.get(n, 0) + 1
        on_handoffs += any(dev_id not in primaries for dev_id in held)
    click.echo(f"  objects and tombstones: {len(where)}; newest copy on N of {ring_.replicas} primaries: "
               + (", ".join(f"{n}: {health[n]}" for n in sorted(health, reverse=True)) or "none"))
    click.echo(f"  objects with copies on handoffs (replication moves them home): {on_handoffs}")


@object_group.group(short_help="The root secrets of encryption at rest: rotate, show.")
def key() -> None:
    """The root secrets of encryption at rest (<state_dir>/object/root-secret)."""


@key.command("rotate", epilog=example('cumulo object key rotate && cumulo object key show'))
@click.pass_context
def key_rotate(ctx: click.Context) -> None:
    """Add a new root secret and make it the one new writes use (a running server takes it at its
    next restart); the older secrets stay and still decrypt what they encrypted."""
    from cumulo.object.storage.crypto import CryptoError, KeyMaster

    try:
        new_id = KeyMaster.rotate(_state(ctx).parent)
    except CryptoError as exc:
        raise _fail(exc) from None
    click.echo(f"root secret {new_id} is now active in {_state(ctx) / 'root-secret'}; "
               "restart the server to encrypt new writes with it")


@key.command("show", epilog=example('cumulo object key show'))
@click.pass_context
def key_show(ctx: click.Context) -> None:
    """The root secrets' ids (never the secrets) and which one is active."""
    from cumulo.object.storage.crypto import CryptoError, KeyMaster

    try:
        km = KeyMaster.open(_state(ctx).parent, create=False)
    except CryptoError as exc:
        raise _fail(exc) from None
    if km is None:
        click.echo("no root secret yet (made at the first start with [object] encryption on)")
        return
    click.echo(f"{km.path}: {len(km.keys)} root secrets, active {km.active}")
    for key_id in sorted(km.keys, key=lambda k: (len(k), k)):
        click.echo(f"  {key_id}{'  (active)' if key_id == km.active else ''}")
