"""Cumulo's configuration: one TOML file plus environment overrides.

Every setting has a default, so an empty file (or none) gives a working single-node cloud.
The file is found at ``--config``, else ``$CUMULO_CONFIG``, else ``<state_dir>/cumulo.toml``,
else ``/etc/cumulo/cumulo.toml``.  Any key can be overridden from the environment as
``CUMULO_<SECTION>__<KEY>`` (``CUMULO_DATABASE__URL=postgresql://...``); top-level keys are
``CUMULO_<KEY>`` (``CUMULO_STATE_DIR=/srv/cumulo``).  ``cumulo config show`` prints the result.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has the wrong type or an unknown name."""


@dataclass
class DatabaseConfig:
    # Empty means SQLite in the state directory.  postgresql://, mysql:// and sqlite:// URLs
    # are accepted; the async driver is chosen for you.
    url: str = ""
    pool_size: int = 10
    echo: bool = False


@dataclass
class BusConfig:
    # memory:// is the in-process bus of a single controller; amqp://user:pw@host:5672/ is RabbitMQ.
    url: str = "memory://"
    rpc_timeout: float = 30.0
    # Names of the broker's exchange and queues start with this: clouds sharing a broker differ here.
    prefix: str = "cumulo"


@dataclass
class APIConfig:
    bind_host: str = "127.0.0.1"
    # The host name put in catalog URLs; defaults to bind_host.
    public_host: str = ""
    # Base URLs the catalog and clouds.yaml name instead of http://<public_host>:<port>, by service
    # (identity, image, compute, placement, network, volume, object, dashboard): a load balancer's,
    # as ["identity=http://lb.example:5000", "compute=http://lb.example:8774"] (Keystone's
    # public_endpoint, per service). The path (/v3, /v2.1) is added to it.
    public_endpoints: list[str] = field(default_factory=list)
    region: str = "RegionOne"
    # Upper bound of a request body in bytes (Keystone's default is 114688).
    max_request_body_size: int = 114688
    access_log: bool = False
    # API worker processes: 0 is one per CPU core, 1 serves everything from the `cumulo up` process.
    workers: int = 0
    # A request's time budget in seconds (until its answer starts); past it, a 503. 0: no budget.
    request_timeout: float = 60.0
    # Slow clients: a request's headers must arrive within header_timeout seconds; idle keep-alive
    # connections close after keepalive_timeout; past max_connections per process new requests get 503.
    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    backlog: int = 2048
    # The event-loop watchdog logs and counts every stall longer than this (seconds; 0: off).
    stall_threshold: float = 0.1


@dataclass
class MetricsConfig:
    # /metrics and /healthcheck for every service, on an operator-only port.
    enabled: bool = True
    port: int = 9180
    # While this file exists /healthcheck answers 503 "DISABLED BY FILE" (oslo.middleware's
    # disable_by_file_path): touch it to drain a controller from its load balancer before maintenance.
    disable_by_file_path: str = ""
    # Seconds between the leader's refreshes of the cloud-level gauges (openstack_nova_*, ...; a
    # scrape serves the last figures) and of the per-instance meters (ceilometer_*, 0: none).
    cloud_interval: float = 30.0
    meter_interval: float = 60.0


@dataclass
class DoctorConfig:
    """What `cumulo doctor` calls a warning or a failure."""

    # Disk use of the state directory, instances, volumes and object devices (percent of the file system).
    disk_warning_percent: float = 80.0
    disk_failure_percent: float = 90.0
    # Seconds a transition may stay past its lease before it counts as stuck (the reconcilers end
    # expired leases every 5-10 s, so a minute means they are not running or fail on it).
    lease_grace: float = 60.0
    # Seconds a transitional state without any lease may last (nothing will ever end it).
    stuck_after: float = 3600.0
    # Days since the last Fernet key rotation (`cumulo identity rotate-keys`) before a warning.
    key_max_age_days: float = 30.0
    # Days before a password (or application credential) expires that it is reported.
    expiry_warning_days: float = 14.0


@dataclass
class SecurityComplianceConfig:
    # 0 disables the lockout.
    lockout_failure_attempts: int = 0
    lockout_duration: int = 1800
    unique_last_password_count: int = 0
    minimum_password_age: int = 0
    password_expires_days: int = 0
    password_regex: str = ""
    password_regex_description: str = ""
    change_password_upon_first_use: bool = False


@dataclass
class IdentityConfig:
    port: int = 5000
    token_expiration: int = 3600
    # How long after expiry a token may still be validated with allow_expired=true.
    allow_expired_window: int = 172800
    password_hash_algorithm: str = "bcrypt"
    password_hash_rounds: int = 12
    # Directory of Fernet keys; empty means <state_dir>/fernet-keys.
    key_repository: str = ""
    # A second region sharing identity: the database of the region that runs identity (its users,
    # projects, catalog, limits); empty: [database] url. Compute, network, volume, image and
    # placement stay in [database] url (docs/operations.md, "Regions").
    database_url: str = ""
    max_active_keys: int = 3
    default_domain_id: str = "default"
    list_limit: int = 0
    security_compliance: SecurityComplianceConfig = field(default_factory=SecurityComplianceConfig)


@dataclass
class ImageConfig:
    port: int = 9292
    # Members an image may have (the Ops Guide's image member quota).
    image_member_quota: int = 128
    # Upload the cumulo-tiny guest images at start-up when the guest build is present.
    upload_guest_images: bool = True
    # Seconds an upload's claim on an image lasts without renewal; a writer that dies leaves the
    # image in saving at most this long (plus one reconcile pass) before it is queued again.
    upload_lease: float = 30.0
    # Refuse image data that is not the image's disk_format (Glance's require_image_format_match).
    # Unsafe data (a qcow2 backing or data file, VMDK extents elsewhere) is refused whatever this says.
    require_image_format_match: bool = True
    # The filesystem stores (Glance's enabled_backends): the first is the default and keeps its data
    # in <state_dir>/images, another NAME in <state_dir>/images-NAME.  Two or more make copy-image useful.
    stores: list[str] = field(default_factory=lambda: ["file"])
    # URL prefixes the web-download import may fetch from ("http://127.0.0.1:8000/",
    # "https://cloud-images.example.org/"); empty turns web-download off.
    web_download_allowed: list[str] = field(default_factory=list)
    # The largest image in bytes (Glance's image_size_cap, 1 TiB): uploads and imports past it get 413.
    image_size_cap: int = 1 << 40
    # "raw" converts qcow2, vmdk, vhd, vhdx and vdi data to raw on import with qemu-img (Glance's
    # image_conversion plugin, output_format); empty keeps the data as it came.
    import_convert_to: str = ""


@dataclass
class ComputeConfig:
    port: int = 8774
    # A compute service that has not reported for this long is shown down.
    service_down_time: int = 60
    report_interval: float = 10.0
    # In-process compute agents with the fake driver (for trying the control plane and scale tests).
    fake_nodes: int = 0
    # Seconds a build may take before the reconciler moves the server to ERROR.
    build_timeout: float = 120.0
    # Seconds a deleted server stays SOFT_DELETED (restorable) before it is reclaimed; 0 deletes at once.
    reclaim_instance_interval: int = 0
    # Resizing may pick the server's own host (one-node clouds need it).
    allow_resize_to_same_host: bool = True
    # The zone of hosts that are in no aggregate with an availability_zone.
    default_availability_zone: str = "nova"
    # Run a compute agent for this machine inside `cumulo up`, with the QEMU driver (real VMs).
    local_node: bool = True
    # How many QEMU nodes `cumulo up` runs on this machine (HOST, HOST-2, ...): more than one lets
    # servers move between nodes (migration, evacuation) on a single machine.
    local_nodes: int = 1
    # This machine's compute host name (default: the system's host name).
    host: str = ""
    # Where instances' disks, consoles and sockets live: <instances_path>/<host>/ (default
    # <state_dir>/instances); nodes that share it can move servers between them cold.
    instances_path: str = ""
    # Seconds a guest gets to power off on the ACPI button before it is stopped hard.
    shutdown_timeout: float = 60.0
    # Guests booting at once on this machine, shared by the QEMU nodes of one process (0: one per
    # core and one more): a QEMU starts once a slot is free, and its slot is free again when the
    # guest's boot has settled (its CPU demand below a third of a core) or after 20 s.
    max_concurrent_builds: int = 0
    # When a node's agent starts and finds servers that should run but do not (the machine
    # rebooted), start them (true) or show them SHUTOFF (false), as Nova's option of this name.
    resume_guests_state_on_host_boot: bool = False
    # Cached base images no instance uses are removed after this many seconds.
    image_cache_max_age: int = 86400
    # TCG translation cache per guest in MiB (memory per guest when there is no KVM).
    tcg_tb_size: int = 32
    # The metadata API (guests reach it at 169.254.169.254 through the network's metadata proxy).
    metadata_port: int = 8775
    # The secret the metadata proxy signs instance ids with (empty: generated and kept in the state dir).
    metadata_secret: str = ""
    # The console proxies every controller serves (as nova-serialproxy and nova-novncproxy do): the
    # serial console over a websocket, VNC for noVNC clients; 0 turns one off.
    serial_proxy_port: int = 6083
    novnc_proxy_port: int = 6080
    # The URLs users reach them at (Nova's [serial_console] base_url, [vnc] novncproxy_base_url);
    # empty: ws://<public_host>:<serial_proxy_port>/ and http://<public_host>:<novnc_proxy_port>/vnc_lite.html
    serial_proxy_base_url: str = ""
    novnc_proxy_base_url: str = ""
    # noVNC's web client, served by the noVNC proxy (Debian's novnc package puts it here).
    novnc_web: str = "/usr/share/novnc"
    # Seconds a console URL's token stays valid (Nova's [consoleauth] token_ttl); it opens one connection.
    console_token_ttl: int = 600
    # How this cloud's compute nodes reach volumes (the connector tells the volume agent): "file"
    # opens the volume's file (the storage node's own machine), "nbd" connects to an NBD export of
    # qemu-storage-daemon on the storage node (a node on another machine), "auto" lets the agent
    # pick: the file when the node's address is one of the storage node's own, else NBD.
    volume_transport: str = "auto"


@dataclass
class NetworkConfig:
    port: int = 9696
    # The Linux dataplane on this machine (bridges, DHCP, security groups, routers, metadata
    # proxy in network namespaces): "auto" runs it when the machine can (root, iproute2, dnsmasq,
    # iptables), "true" insists, "false" serves the API alone.
    dataplane: str = "auto"
    # Every namespace of the dataplane is named <prefix>-...; clouds sharing a machine need
    # different prefixes.  The outside of external networks is the namespace <prefix>-ext.
    namespace_prefix: str = "cumulo"
    # Seconds between full reconciles of the dataplane (changes are applied at once anyway).
    reconcile_interval: float = 30.0
    # `cumulo up` makes a first topology once, as devstack does: an external network "public"
    # (public_cidr, reached from <prefix>-ext) and, in the demo project, a network "private"
    # (private_cidr) behind router "router1".
    bootstrap: bool = True
    public_cidr: str = "172.24.4.0/24"
    private_cidr: str = "10.0.0.0/24"
    # This host's management address that carries VXLAN tenant networks to the other hosts
    # (Neutron's [vxlan] local_ip).  Empty: a single host, every network built here, no tunnels.
    # The agent looks for the address in <prefix>-dp first, else in the root namespace; nothing
    # else about the host's interfaces is touched.
    tunnel_address: str = ""
    # Seconds without a heartbeat before a network agent is not alive (Neutron's agent_down_time):
    # its DHCP and routers are then rescheduled on a live agent of another host.
    agent_down_time: float = 75.0


@dataclass
class PlacementConfig:
    port: int = 8778


@dataclass
class VolumeConfig:
    """Block storage (Cinder's twin); it runs when "volume" is in services."""

    port: int = 8776
    # Run a volume agent for this machine inside `cumulo up`: qcow2 files under
    # <volumes_path>/<host>/ (default <state_dir>/volumes).
    local_node: bool = True
    host: str = ""
    volumes_path: str = ""
    # Where volume backups go (chunked, zstd-compressed, checksummed; default <state_dir>/backups);
    # shared by the storage nodes when there are several, as Cinder's posix backup path is.
    backups_path: str = ""
    # Seconds between the agents' pool reports; a pool silent for service_down_time is down.
    report_interval: float = 10.0
    service_down_time: int = 60
    # Seconds a create, delete or snapshot may take before the reconciler ends it (a create goes
    # to error, a delete is resumed).
    operation_timeout: float = 120.0
    # The zone every volume is in (Cinder's storage_availability_zone).
    availability_zone: str = "nova"
    # The pool's capacity the agent reports (GiB); 0: the size of the file system it lives on.
    capacity_gb: int = 0
    # The address the NBD exports (qemu-storage-daemon, one per volume a remote compute node
    # attaches) listen on: an address of this storage node that compute nodes reach, or a directory
    # (an absolute path) for unix sockets when the nodes share this machine.
    export_host: str = "127.0.0.1"


@dataclass
class ObjectConfig:
    """Object storage (Swift's twin, the v1 API); it runs when "object" is in services."""

    port: int = 8080
    # The ring of this machine: replicas of every object over device directories under
    # <state_dir>/object (2**part_power partitions).
    devices: int = 3
    replicas: int = 3
    part_power: int = 10
    # The largest object one PUT stores (Swift's max_file_size, 5 GiB).
    max_file_size: int = 5 * 1024**3
    # Seconds between the replicator's and auditor's passes over the devices.
    replicator_interval: float = 30.0
    # Features of the pipeline (cumulo/object/middleware: tempurl, slo, versioned_writes, ...)
    # to turn off; GET /info lists those that are on.
    disabled_features: list[str] = field(default_factory=list)
    # The S3 API over the same data, path-style (http://host:port/bucket/key); 0 turns it off.
    s3_port: int = 8081
    # Seconds between the expirer's passes (deleting objects whose X-Delete-At has come).
    expirer_interval: float = 30.0
    # Object bodies encrypted at rest (AES-256-CTR, keys from <state_dir>/object/root-secret).
    encryption: bool = True


@dataclass
class DashboardConfig:
    """The web console (Horizon's twin); it runs when "dashboard" is in services."""

    port: int = 8000


@dataclass
class BootstrapConfig:
    admin_user: str = "admin"
    admin_password: str = ""  # empty: generated once and kept in <state_dir>/admin-password
    admin_project: str = "admin"
    demo_user: str = "demo"
    demo_password: str = ""
    demo_project: str = "demo"
    # Merge the cumulo clouds into ~/.config/openstack/clouds.yaml (tests turn this off).
    write_user_clouds: bool = True


@dataclass
class PolicyConfig:
    # A YAML or JSON file in oslo.policy syntax whose rules override the defaults.
    file: str = ""


@dataclass
class LoggingConfig:
    level: str = "INFO"
    file: str = ""
    # "text": `TIME LEVEL LOGGER [req-... USER PROJECT] MESSAGE`; "json": one object a line (time,
    # level, logger, request_id, user_id, project_id, process, message, exception, extra fields).
    format: str = "text"
    # The file is renamed to FILE.1 (FILE.1 to FILE.2, ...) when it passes max_bytes, keeping
    # backup_count old files; 0 never rotates (an external logrotate may rename it: it is reopened).
    max_bytes: int = 100 * 1024 * 1024
    backup_count: int = 5
    # Also send every line to syslog: "/dev/log" (journald or rsyslog), another unix socket, or
    # "host:port" (UDP); empty: no syslog.  syslog_facility: user, daemon, local0..local7, ...
    syslog: str = ""
    syslog_facility: str = "user"


@dataclass
class CanaryConfig:
    """The canary inside `cumulo up` (`cumulo canary` runs it once): boots a server, reaches it
    through a floating IP, stores an object, attaches a volume, deletes it all, and serves each
    step's success and seconds on the operator port's /metrics (cumulo_canary_*)."""

    # Seconds between runs; 0 (the default) turns the periodic canary off.
    interval: float = 0.0
    # Seconds after the start before the first run (the agents report in first).
    delay: float = 60.0


@dataclass
class Config:
    state_dir: str = "/var/lib/cumulo"
    services: list[str] = field(default_factory=lambda: ["identity", "image", "compute", "placement", "network",
                                                         "volume", "object", "dashboard"])
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    api: APIConfig = field(default_factory=APIConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # The Network API runs when "network" is in services, with its dataplane (see [network] dataplane).
    network: NetworkConfig = field(default_factory=NetworkConfig)
    # Block storage runs when "volume" is in services (it is by default).
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    # Object storage runs when "object" is in services (it is by default).
    object: ObjectConfig = field(default_factory=ObjectConfig)
    # The dashboard runs when "dashboard" is in services (it is by default).
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    # Where the file came from, for `cumulo config show`.
    source: str = ""

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_path / 'cumulo.db'}"

    @property
    def key_repository(self) -> Path:
        return Path(self.identity.key_repository or self.state_path / "fernet-keys")

    @property
    def public_host(self) -> str:
        return self.api.public_host or self.api.bind_host

    def service_ports(self) -> dict[str, int]:
        return {"identity": self.identity.port, "image": self.image.port, "compute": self.compute.port,
                "placement": self.placement.port, "network": self.network.port, "volume": self.volume.port,
                "object": self.object.port, "dashboard": self.dashboard.port}

    def public_endpoint_bases(self) -> dict[str, str]:
        """``[api] public_endpoints`` by service name (checked by ``load``)."""
        out = {}
        for entry in self.api.public_endpoints:
            name, sep, base = entry.partition("=")
            if not sep or name.strip() not in self.service_ports() or not base.strip().startswith(("http://",
                                                                                                   "https://")):
                raise ConfigError(f"api.public_endpoints: expected SERVICE=http(s)://HOST:PORT with SERVICE one of "
                                  f"{', '.join(self.service_ports())}, got {entry!r}")
            out[name.strip()] = base.strip().rstrip("/")
        return out

    def endpoint(self, port: int, path: str = "") -> str:
        """The public URL of the API on ``port`` (a load balancer's when ``[api] public_endpoints`` names it)."""
        if self.api.public_endpoints:
            bases = self.public_endpoint_bases()
            for name, service_port in self.service_ports().items():
                if service_port == port and name in bases:
                    return bases[name] + path
        return f"http://{self.public_host}:{port}{path}"


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is list or typ is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return value
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ in (int, float):
        try:
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if typ is str:
        return str(value)
    return value


def _apply(obj: Any, data: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        if key not in hints or key == "source":
            raise ConfigError(f"unknown setting {where}{key}")
        typ = hints[key]
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} is a section: use [{where}{key}]")
            _apply(current, value, f"{where}{key}.")
        else:
            if isinstance(typ, types.UnionType):
                typ = typing.get_args(typ)[0]
            setattr(obj, key, _coerce(value, typ, f"{where}{key}"))


def _env_overrides(env: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("CUMULO_") or name == "CUMULO_CONFIG":
            continue
        parts = name[len("CUMULO_"):].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load(path: str | os.PathLike[str] | None = None,
         env: typing.Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration from defaults, the TOML file, the environment and overrides."""
    env = os.environ if env is None else env
    cfg = Config()
    env_data = _env_overrides(env)
    state_dir = overrides.get("state_dir") or env_data.get("state_dir") or cfg.state_dir
    candidates = [path, env.get("CUMULO_CONFIG"), Path(state_dir) / "cumulo.toml", "/etc/cumulo/cumulo.toml"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            with open(candidate, "rb") as fh:
                try:
                    data = tomllib.load(fh)
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(f"{candidate}: {exc}") from None
            _apply(cfg, data, "")
            cfg.source = str(candidate)
            break
        if candidate == path and path:
            raise ConfigError(f"config file {path} does not exist")
    _apply(cfg, env_data, "")
    _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "")
    if cfg.logging.format not in ("text", "json"):
        raise ConfigError(f"logging.format: expected text or json, got {cfg.logging.format!r}")
    cfg.public_endpoint_bases()  # a wrong entry fails here, not when the catalog is written
    return cfg


def as_dict(cfg: Config) -> dict[str, Any]:
    data = dataclasses.asdict(cfg)
    data.pop("source", None)
    return data


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render a config dict as TOML (scalars first, then sections), for `cumulo config show`."""
    lines: list[str] = []
    sections: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            sections.append((f"{prefix}{key}", value))
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_quote(v) for v in value)}]")
        else:
            lines.append(f"{key} = {_quote(value)}")
    out = "\n".join(lines)
    for name, section in sections:
        out += f"\n\n[{name}]\n" + to_toml(section, f"{name}.")
    return out.strip() + "\n" if not prefix else out.strip()


def _quote(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
