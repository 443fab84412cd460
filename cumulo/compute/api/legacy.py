"""/v2.1/extensions: the extension list Nova still answers (the v2.1 API folded every extension in;
clients and tempest still look them up by alias)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import NotFound

# (alias, name, what it adds): the aliases and names of Nova's list, in its order
EXTENSIONS: list[tuple[str, str, str]] = [
    ("NMN", "Multinic", "Several networks per server."),
    ("OS-DCF", "DiskConfig", "The disk configuration (AUTO or MANUAL) of servers."),
    ("OS-EXT-AZ", "ExtendedAvailabilityZone", "The availability zone in server views."),
    ("OS-EXT-IMG-SIZE", "ImageSize", "The image size in image views."),
    ("OS-EXT-IPS", "ExtendedIps", "The type of each address of a server."),
    ("OS-EXT-IPS-MAC", "ExtendedIpsMac", "The MAC address of each address of a server."),
    ("OS-EXT-SRV-ATTR", "ExtendedServerAttributes", "Host and instance attributes in server views."),
    ("OS-EXT-STS", "ExtendedStatus", "VM, task and power states in server views."),
    ("OS-FLV-DISABLED", "FlavorDisabled", "Whether a flavor is disabled."),
    ("OS-FLV-EXT-DATA", "FlavorExtraData", "Ephemeral disk size of flavors."),
    ("OS-SCH-HNT", "SchedulerHints", "Scheduler hints when servers are created."),
    ("OS-SRV-USG", "ServerUsage", "Launch and termination times in server views."),
    ("os-access-ips", "AccessIPs", "The access addresses of servers."),
    ("os-admin-actions", "AdminActions", "State reset and other administrative server actions."),
    ("os-admin-password", "AdminPassword", "Changing a server's administrator password."),
    ("os-agents", "Agents", "Guest agent builds."),
    ("os-aggregates", "Aggregates", "Host aggregates."),
    ("os-assisted-volume-snapshots", "AssistedVolumeSnapshots", "Volume snapshots assisted by the hypervisor."),
    ("os-attach-interfaces", "AttachInterfaces", "Attaching and detaching network interfaces."),
    ("os-availability-zone", "AvailabilityZone", "Availability zones."),
    ("os-baremetal-ext-status", "BareMetalExtStatus", "Bare-metal node status."),
    ("os-baremetal-nodes", "BareMetalNodes", "Bare-metal nodes."),
    ("os-block-device-mapping", "BlockDeviceMapping", "Block device mappings."),
    ("os-block-device-mapping-v2-boot", "BlockDeviceMappingV2Boot", "Booting from block device mappings."),
    ("os-cell-capacities", "CellCapacities", "Cell capacities."),
    ("os-cells", "Cells", "Cells."),
    ("os-certificates", "Certificates", "Certificates."),
    ("os-cloudpipe", "Cloudpipe", "VPN instances."),
    ("os-cloudpipe-update", "CloudpipeUpdate", "Updating VPN instances."),
    ("os-config-drive", "ConfigDrive", "Config drives."),
    ("os-console-auth-tokens", "ConsoleAuthTokens", "Console connection details by token."),
    ("os-console-output", "ConsoleOutput", "A server's console output."),
    ("os-consoles", "Consoles", "Server consoles."),
    ("os-create-backup", "CreateBackup", "Server backups with rotation."),
    ("os-create-server-ext", "Createserverext", "Extended server creation."),
    ("os-deferred-delete", "DeferredDelete", "Restoring and force-deleting soft-deleted servers."),
    ("os-evacuate", "Evacuate", "Evacuating servers from a failed host."),
    ("os-extended-evacuate-find-host", "ExtendedEvacuateFindHost", "Evacuation choosing the host."),
    ("os-extended-floating-ips", "ExtendedFloatingIps", "Floating IPs for a chosen fixed address."),
    ("os-extended-hypervisors", "ExtendedHypervisors", "More hypervisor attributes."),
    ("os-extended-networks", "ExtendedNetworks", "More network attributes."),
    ("os-extended-quotas", "ExtendedQuotas", "Deleting quotas and forcing updates."),
    ("os-extended-rescue-with-image", "ExtendedRescueWithImage", "Rescue with a chosen image."),
    ("os-extended-services", "ExtendedServices", "Disabling services with a reason."),
    ("os-extended-services-delete", "ExtendedServicesDelete", "Deleting services."),
    ("os-extended-status", "ExtendedStatus", "Extended server status."),
    ("os-extended-volumes", "ExtendedVolumes", "Attached volumes in server views."),
    ("os-fixed-ips", "FixedIPs", "Fixed addresses."),
    ("os-flavor-access", "FlavorAccess", "Private flavors and their access lists."),
    ("os-flavor-extra-specs", "FlavorExtraSpecs", "Flavor extra specs."),
    ("os-flavor-manage", "FlavorManage", "Creating and deleting flavors."),
    ("os-flavor-rxtx", "FlavorRxtx", "The rxtx factor of flavors."),
    ("os-flavor-swap", "FlavorSwap", "The swap size of flavors."),
    ("os-floating-ip-dns", "FloatingIpDns", "DNS entries of floating IPs."),
    ("os-floating-ip-pools", "FloatingIpPools", "Floating IP pools."),
    ("os-floating-ips", "FloatingIps", "Floating IPs."),
    ("os-floating-ips-bulk", "FloatingIpsBulk", "Floating IPs in bulk."),
    ("os-fping", "Fping", "Pinging servers."),
    ("os-hide-server-addresses", "HideServerAddresses", "Hiding addresses in some server states."),
    ("os-hosts", "Hosts", "Compute hosts."),
    ("os-hypervisor-status", "HypervisorStatus", "Hypervisor state and status."),
    ("os-hypervisors", "Hypervisors", "Hypervisors."),
    ("os-instance-actions", "InstanceActions", "Server actions and their events."),
    ("os-instance_usage_audit_log", "OSInstanceUsageAuditLog", "The usage audit log of servers."),
    ("os-keypairs", "Keypairs", "Key pairs."),
    ("os-lock-server", "LockServer", "Locking servers."),
    ("os-migrate-server", "MigrateServer", "Migrating servers."),
    ("os-migrations", "Migrations", "Migrations."),
    ("os-multiple-create", "MultipleCreate", "Creating several servers at once."),
    ("os-networks", "Networks", "Networks."),
    ("os-networks-associate", "NetworkAssociationSupport", "Associating networks with projects."),
    ("os-pause-server", "PauseServer", "Pausing servers."),
    ("os-personality", "Personality", "Files injected into servers."),
    ("os-preserve-ephemeral-rebuild", "PreserveEphemeralOnRebuild", "Keeping ephemeral disks on rebuild."),
    ("os-quota-class-sets", "QuotaClasses", "Quota classes."),
    ("os-quota-sets", "Quotas", "Quotas."),
    ("os-rescue", "Rescue", "Rescuing servers."),
    ("os-security-group-default-rules", "SecurityGroupDefaultRules", "Default security group rules."),
    ("os-security-groups", "SecurityGroups", "Security groups."),
    ("os-server-diagnostics", "ServerDiagnostics", "Server diagnostics."),
    ("os-server-external-events", "ServerExternalEvents", "Events from other services about servers."),
    ("os-server-group-quotas", "ServerGroupQuotas", "Server group quotas."),
    ("os-server-groups", "ServerGroups", "Server groups."),
    ("os-server-list-multi-status", "ServerListMultiStatus", "Listing servers in several states."),
    ("os-server-password", "ServerPassword", "Encrypted server passwords."),
    ("os-server-sort-keys", "ServerSortKeys", "Sorting server lists."),
    ("os-server-start-stop", "ServerStartStop", "Starting and stopping servers."),
    ("os-services", "Services", "Compute services."),
    ("os-shelve", "Shelve", "Shelving servers."),
    ("os-simple-tenant-usage", "SimpleTenantUsage", "Usage per project."),
    ("os-suspend-server", "SuspendServer", "Suspending servers."),
    ("os-tenant-networks", "OSTenantNetworks", "A project's networks."),
    ("os-used-limits", "UsedLimits", "Usage in the limits."),
    ("os-used-limits-for-admin", "UsedLimitsForAdmin", "Another project's usage in the limits."),
    ("os-user-data", "UserData", "User data for servers."),
    ("os-user-quotas", "UserQuotas", "Quotas per user."),
    ("os-virtual-interfaces", "VirtualInterfaces", "Virtual interfaces of servers."),
    ("os-volume-attachment-update", "VolumeAttachmentUpdate", "Swapping attached volumes."),
    ("os-volumes", "Volumes", "Volumes."),
]


def extension(alias: str, name: str, description: str) -> dict[str, Any]:
    return {"alias": alias, "name": name, "description": description, "links": [],
            "namespace": "http://docs.openstack.org/compute/ext/fake_xml", "updated": "2014-12-03T00:00:00Z"}


def router() -> Router:
    r = Router()

    @r.get("/v2.1/extensions")
    async def extensions(request: Request) -> Response:
        authorize(request, "os_compute_api:extensions")
        return JSON({"extensions": [extension(*e) for e in EXTENSIONS]})

    @r.get("/v2.1/extensions/{alias}")
    async def show_extension(request: Request) -> Response:
        authorize(request, "os_compute_api:extensions")
        alias = request.path_params["alias"]
        for e in EXTENSIONS:
            if e[0] == alias:
                return JSON({"extension": extension(*e)})
        raise NotFound(f"Extension {alias} could not be found.")

    return r
