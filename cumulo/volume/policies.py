"""Block storage's default policy rules: Cinder's rule names and its current defaults (secure RBAC
with enforce_scope off: a project's reader reads, its member writes, an admin anywhere does
everything; volume types and quotas are the admin's, every user may read the types they can use
and the zones).

Implied roles do the rest (admin implies manager implies member implies reader).  The target is
the resource acted on (its ``project_id``), or the caller's own project for creates and lists.
Override any rule in the file named by ``[policy] file``.
"""

from __future__ import annotations

from cumulo.core.http.authz import Rule

ADMIN = "rule:admin_api"
MEMBER = "rule:project_member_or_admin"
READER = "rule:project_reader_or_admin"
ANY = "@"

MESSAGE = "Policy doesn't allow {rule} to be performed."

RULES: list[Rule] = [
    Rule("admin_api", "role:admin", "Who counts as an admin (any project)"),
    Rule("project_member_api", "role:member and project_id:%(project_id)s",
         "A member of the project that owns the target"),
    Rule("project_reader_api", "role:reader and project_id:%(project_id)s",
         "A reader of the project that owns the target"),
    Rule("project_member_or_admin", "rule:project_member_api or rule:admin_api",
         "The target project's member, or an admin"),
    Rule("project_reader_or_admin", "rule:project_reader_api or rule:admin_api",
         "The target project's reader, or an admin"),
    # volumes
    Rule("volume:create", MEMBER, "POST /volumes"),
    Rule("volume:get", READER, "GET /volumes/{volume_id}"),
    Rule("volume:get_all", READER, "GET /volumes, /volumes/detail"),
    Rule("volume:update", MEMBER, "PUT /volumes/{volume_id}, POST /volumes/{volume_id}/action (os-set_bootable)"),
    Rule("volume:delete", MEMBER, "DELETE /volumes/{volume_id}"),
    Rule("volume:update_readonly_flag", MEMBER, "POST /volumes/{volume_id}/action (os-update_readonly_flag)"),
    Rule("volume:get_volume_metadata", READER, "GET /volumes/{volume_id}/metadata[/{key}]"),
    Rule("volume:create_volume_metadata", MEMBER, "POST /volumes/{volume_id}/metadata"),
    Rule("volume:update_volume_metadata", MEMBER, "PUT /volumes/{volume_id}/metadata[/{key}]"),
    Rule("volume:delete_volume_metadata", MEMBER, "DELETE /volumes/{volume_id}/metadata/{key}"),
    Rule("volume_extension:volume_host_attribute", ADMIN, "Show os-vol-host-attr:host in volumes"),
    Rule("volume_extension:volume_tenant_attribute", READER, "Show os-vol-tenant-attr:tenant_id in volumes "
         "(the project's readers too, as in Cinder: tempest's transfer test reads it as the new owner)"),
    Rule("volume_extension:volume_mig_status_attribute", ADMIN, "Show the migration status fields of volumes"),
    Rule("volume:get_all:all_tenants", ADMIN, "GET /volumes?all_tenants=1: every project's volumes"),
    # the legacy attach actions (Cinder's volume_actions policies)
    Rule("volume:reserve_volume", MEMBER, "POST /volumes/{volume_id}/action (os-reserve)"),
    Rule("volume:unreserve_volume", MEMBER, "POST /volumes/{volume_id}/action (os-unreserve)"),
    Rule("volume:begin_detaching", MEMBER, "POST /volumes/{volume_id}/action (os-begin_detaching)"),
    Rule("volume:roll_detaching", MEMBER, "POST /volumes/{volume_id}/action (os-roll_detaching)"),
    Rule("volume:attach", MEMBER, "POST /volumes/{volume_id}/action (os-attach)"),
    Rule("volume:detach", MEMBER, "POST /volumes/{volume_id}/action (os-detach)"),
    Rule("volume:initialize_connection", MEMBER, "POST /volumes/{volume_id}/action (os-initialize_connection)"),
    Rule("volume:terminate_connection", MEMBER, "POST /volumes/{volume_id}/action (os-terminate_connection)"),
    Rule("volume_extension:volume_admin_actions:force_detach", ADMIN,
         "POST /volumes/{volume_id}/action (os-force_detach)"),
    # extend, upload to an image, image metadata (Cinder's volume_actions and image metadata rules)
    Rule("volume:extend", MEMBER, "POST /volumes/{volume_id}/action (os-extend)"),
    Rule("volume:extend_attached_volume", MEMBER, "POST /volumes/{volume_id}/action (os-extend of an in-use "
         "volume, 3.42)"),
    Rule("volume_extension:volume_actions:upload_image", MEMBER,
         "POST /volumes/{volume_id}/action (os-volume_upload_image)"),
    Rule("volume_extension:volume_actions:upload_public", ADMIN,
         "POST /volumes/{volume_id}/action (os-volume_upload_image with visibility public, 3.1)"),
    Rule("volume_extension:volume_image_metadata:show", READER,
         "POST /volumes/{volume_id}/action (os-show_image_metadata), volume_image_metadata in volumes"),
    Rule("volume_extension:volume_image_metadata:set", MEMBER,
         "POST /volumes/{volume_id}/action (os-set_image_metadata)"),
    Rule("volume_extension:volume_image_metadata:remove", MEMBER,
         "POST /volumes/{volume_id}/action (os-unset_image_metadata)"),
    # the admin's actions
    Rule("volume_extension:volume_admin_actions:reset_status", ADMIN,
         "POST /volumes/{volume_id}/action (os-reset_status)"),
    Rule("volume_extension:volume_admin_actions:force_delete", ADMIN,
         "POST /volumes/{volume_id}/action (os-force_delete)"),
    Rule("volume_extension:snapshot_admin_actions:reset_status", ADMIN,
         "POST /snapshots/{snapshot_id}/action (os-reset_status)"),
    Rule("volume_extension:snapshot_admin_actions:force_delete", ADMIN,
         "POST /snapshots/{snapshot_id}/action (os-force_delete)"),
    Rule("snapshot_extension:snapshot_actions:update_snapshot_status", MEMBER,
         "POST /snapshots/{snapshot_id}/action (os-update_snapshot_status)"),
    # the cloud's services and pools, and the user messages (3.3)
    Rule("volume_extension:services:index", ADMIN, "GET /os-services"),
    Rule("volume_extension:services:update", ADMIN,
         "PUT /os-services/{enable,disable,disable-log-reason,freeze,thaw}"),
    Rule("scheduler_extension:scheduler_stats:get_pools", ADMIN, "GET /scheduler-stats/get_pools"),
    Rule("volume_extension:capabilities", ADMIN, "GET /capabilities/{host_name}"),
    Rule("volume_extension:volume_type_encryption:create", ADMIN, "POST /types/{type_id}/encryption"),
    Rule("volume_extension:volume_type_encryption:get", ADMIN, "GET /types/{type_id}/encryption[/{key}]"),
    Rule("volume_extension:volume_type_encryption:update", ADMIN, "PUT /types/{type_id}/encryption/{encryption_id}"),
    Rule("volume_extension:volume_type_encryption:delete", ADMIN,
         "DELETE /types/{type_id}/encryption/{encryption_id}"),
    Rule("message:get_all", READER, "GET /messages"),
    Rule("message:get", READER, "GET /messages/{message_id}"),
    Rule("message:delete", MEMBER, "DELETE /messages/{message_id}"),
    # attachments (3.27).  Cinder has no rule for reading them (its database scopes them to the
    # project); Cumulo names one so an operator can override it, with the reader's default.
    Rule("volume:attachment_create", MEMBER, "POST /attachments"),
    Rule("volume:attachment_update", MEMBER, "PUT /attachments/{attachment_id}"),
    Rule("volume:attachment_delete", MEMBER, "DELETE /attachments/{attachment_id}"),
    Rule("volume:attachment_complete", MEMBER, "POST /attachments/{attachment_id}/action (os-complete)"),
    Rule("volume:attachment_get", READER, "GET /attachments/{attachment_id} (Cumulo's name)"),
    Rule("volume:attachment_get_all", READER, "GET /attachments, /attachments/detail (Cumulo's name)"),
    # volume types and their extra specs
    Rule("volume_extension:type_get", ANY, "GET /types/{type_id}"),
    Rule("volume_extension:type_get_all", ANY, "GET /types"),
    Rule("volume_extension:type_create", ADMIN, "POST /types"),
    Rule("volume_extension:type_update", ADMIN, "PUT /types/{type_id}"),
    Rule("volume_extension:type_delete", ADMIN, "DELETE /types/{type_id}"),
    Rule("volume_extension:types_extra_specs:index", ANY, "GET /types/{type_id}/extra_specs"),
    Rule("volume_extension:types_extra_specs:show", ANY, "GET /types/{type_id}/extra_specs/{key}"),
    Rule("volume_extension:types_extra_specs:create", ADMIN, "POST /types/{type_id}/extra_specs"),
    Rule("volume_extension:types_extra_specs:update", ADMIN, "PUT /types/{type_id}/extra_specs/{key}"),
    Rule("volume_extension:types_extra_specs:delete", ADMIN, "DELETE /types/{type_id}/extra_specs/{key}"),
    # QoS specs and a private type's projects (an admin's, as in Cinder)
    Rule("volume_extension:access_types_qos_specs_id", ADMIN,
         "Show qos_specs_id in GET /types, /types/{type_id}"),
    Rule("volume_extension:qos_specs_manage:get_all", ADMIN, "GET /qos-specs, /qos-specs/{qos_id}/associations"),
    Rule("volume_extension:qos_specs_manage:get", ADMIN, "GET /qos-specs/{qos_id}"),
    Rule("volume_extension:qos_specs_manage:create", ADMIN, "POST /qos-specs"),
    Rule("volume_extension:qos_specs_manage:update", ADMIN,
         "PUT /qos-specs/{qos_id}, GET /qos-specs/{qos_id}/associate, /disassociate, /disassociate_all"),
    Rule("volume_extension:qos_specs_manage:delete", ADMIN,
         "DELETE /qos-specs/{qos_id}, PUT /qos-specs/{qos_id}/delete_keys"),
    Rule("volume_extension:volume_type_access:addProjectAccess", ADMIN,
         "POST /types/{type_id}/action (addProjectAccess)"),
    Rule("volume_extension:volume_type_access:removeProjectAccess", ADMIN,
         "POST /types/{type_id}/action (removeProjectAccess)"),
    Rule("volume_extension:volume_type_access:get_all_for_type", ADMIN, "GET /types/{type_id}/os-volume-type-access"),
    # snapshots
    Rule("volume:create_snapshot", MEMBER, "POST /snapshots"),
    Rule("volume:get_snapshot", READER, "GET /snapshots/{snapshot_id}"),
    Rule("volume:get_all_snapshots", READER, "GET /snapshots, /snapshots/detail"),
    Rule("volume:update_snapshot", MEMBER, "PUT /snapshots/{snapshot_id}"),
    Rule("volume:delete_snapshot", MEMBER, "DELETE /snapshots/{snapshot_id}"),
    Rule("volume:get_snapshot_metadata", READER, "GET /snapshots/{snapshot_id}/metadata[/{key}]"),
    Rule("volume:update_snapshot_metadata", MEMBER, "POST, PUT /snapshots/{snapshot_id}/metadata[/{key}]"),
    Rule("volume:delete_snapshot_metadata", MEMBER, "DELETE /snapshots/{snapshot_id}/metadata/{key}"),
    Rule("volume_extension:extended_snapshot_attributes", READER,
         "Show os-extended-snapshot-attributes:project_id and :progress in snapshots"),
    # quotas, limits, zones
    Rule("volume_extension:quotas:show", READER, "GET /os-quota-sets/{project_id}"),
    Rule("volume_extension:quotas:update", ADMIN, "PUT /os-quota-sets/{project_id}"),
    Rule("volume_extension:quotas:delete", ADMIN, "DELETE /os-quota-sets/{project_id}"),
    Rule("volume_extension:quota_classes", ADMIN, "GET, PUT /os-quota-class-sets/{class_name}"),
    Rule("volume_extension:hosts", ADMIN, "GET /os-hosts, /os-hosts/{host_name}"),
    Rule("limits_extension:used_limits", READER, "GET /limits"),
    Rule("volume_extension:availability_zone_list", ANY, "GET /os-availability-zone"),
    Rule("volume_extension:list", ANY, "GET /extensions"),
    # backups (Cinder's backup policies; export and import are the admin's)
    Rule("backup:create", MEMBER, "POST /backups"),
    Rule("backup:get", READER, "GET /backups/{backup_id}"),
    Rule("backup:get_all", READER, "GET /backups, /backups/detail"),
    Rule("backup:update", MEMBER, "PUT /backups/{backup_id} (3.9)"),
    Rule("backup:delete", MEMBER, "DELETE /backups/{backup_id}"),
    Rule("backup:restore", MEMBER, "POST /backups/{backup_id}/restore"),
    Rule("backup:backup-export", ADMIN, "GET /backups/{backup_id}/export_record"),
    Rule("backup:backup-import", ADMIN, "POST /backups/import_record"),
    Rule("backup:backup_project_attribute", ADMIN, "Show os-backup-project-attr:project_id in backups (3.18)"),
    Rule("volume_extension:backup_admin_actions:reset_status", ADMIN,
         "POST /backups/{backup_id}/action (os-reset_status)"),
    Rule("volume_extension:backup_admin_actions:force_delete", ADMIN,
         "POST /backups/{backup_id}/action (os-force_delete), DELETE /backups/{backup_id}?force=true"),
    # volume transfers (os-volume-transfer, and /volume-transfers from 3.55): the accepting
    # project's member accepts; the others act on a transfer of their project's volume
    Rule("volume:create_transfer", MEMBER, "POST /os-volume-transfer, /volume-transfers"),
    Rule("volume:get_transfer", READER, "GET /os-volume-transfer/{transfer_id}, /volume-transfers/{transfer_id}"),
    Rule("volume:get_all_transfers", READER,
         "GET /os-volume-transfer, /os-volume-transfer/detail, /volume-transfers, /volume-transfers/detail"),
    Rule("volume:accept_transfer", MEMBER,
         "POST /os-volume-transfer/{transfer_id}/accept, /volume-transfers/{transfer_id}/accept"),
    Rule("volume:delete_transfer", MEMBER,
         "DELETE /os-volume-transfer/{transfer_id}, /volume-transfers/{transfer_id}"),
    # retype, migration, and freezing a storage backend
    Rule("volume:retype", MEMBER, "POST /volumes/{volume_id}/action (os-retype)"),
    Rule("volume_extension:volume_admin_actions:migrate_volume", ADMIN,
         "POST /volumes/{volume_id}/action (os-migrate_volume)"),
    Rule("volume:freeze_host", ADMIN, "PUT /os-services/freeze"),
    Rule("volume:thaw_host", ADMIN, "PUT /os-services/thaw"),
]

# generic volume groups (Cinder's group_types, groups, group_actions, group_snapshots and
# group_snapshot_actions policies).  Cinder's older names group:group_types_manage and
# group:group_types_specs stay, and the newer per-action rules default to them, so a file that
# overrides an older name still governs its routes.
MANAGE_GROUP_TYPES = "rule:group:group_types_manage"
GROUP_TYPE_SPECS = "rule:group:group_types_specs"
RULES.extend([
    Rule("group:group_types_manage", ADMIN, "POST, PUT, DELETE /group_types[/{group_type_id}] (the older name)"),
    Rule("group:group_types:create", MANAGE_GROUP_TYPES, "POST /group_types (3.11)"),
    Rule("group:group_types:update", MANAGE_GROUP_TYPES, "PUT /group_types/{group_type_id}"),
    Rule("group:group_types:delete", MANAGE_GROUP_TYPES, "DELETE /group_types/{group_type_id}"),
    Rule("group:access_group_types_specs", ADMIN, "Show group_specs in group types"),
    Rule("group:group_types_specs", ADMIN, "The group specs of a group type (the older name)"),
    Rule("group:group_types_specs:get", GROUP_TYPE_SPECS, "GET /group_types/{group_type_id}/group_specs/{key}"),
    Rule("group:group_types_specs:get_all", GROUP_TYPE_SPECS, "GET /group_types/{group_type_id}/group_specs"),
    Rule("group:group_types_specs:create", GROUP_TYPE_SPECS, "POST /group_types/{group_type_id}/group_specs"),
    Rule("group:group_types_specs:update", GROUP_TYPE_SPECS, "PUT /group_types/{group_type_id}/group_specs/{key}"),
    Rule("group:group_types_specs:delete", GROUP_TYPE_SPECS,
         "DELETE /group_types/{group_type_id}/group_specs/{key}"),
    Rule("group:get_all", READER, "GET /groups, /groups/detail (3.13)"),
    Rule("group:create", MEMBER, "POST /groups, POST /groups/action (create-from-src, 3.14)"),
    Rule("group:get", READER, "GET /groups/{group_id}"),
    Rule("group:update", MEMBER, "PUT /groups/{group_id}"),
    Rule("group:group_project_attribute", ADMIN, "Show project_id in groups (3.58)"),
    Rule("group:delete", MEMBER, "POST /groups/{group_id}/action (delete)"),
    Rule("group:reset_status", ADMIN, "POST /groups/{group_id}/action (reset_status, 3.20)"),
    Rule("group:enable_replication", MEMBER, "POST /groups/{group_id}/action (enable_replication, 3.38)"),
    Rule("group:disable_replication", MEMBER, "POST /groups/{group_id}/action (disable_replication, 3.38)"),
    Rule("group:failover_replication", MEMBER, "POST /groups/{group_id}/action (failover_replication, 3.38)"),
    Rule("group:list_replication_targets", MEMBER,
         "POST /groups/{group_id}/action (list_replication_targets, 3.38)"),
    Rule("group:get_all_group_snapshots", READER, "GET /group_snapshots, /group_snapshots/detail (3.14)"),
    Rule("group:create_group_snapshot", MEMBER, "POST /group_snapshots"),
    Rule("group:get_group_snapshot", READER, "GET /group_snapshots/{group_snapshot_id}"),
    Rule("group:delete_group_snapshot", MEMBER, "DELETE /group_snapshots/{group_snapshot_id}"),
    Rule("group:group_snapshot_project_attribute", ADMIN, "Show project_id in group snapshots (3.58)"),
    Rule("group:reset_group_snapshot_status", ADMIN,
         "POST /group_snapshots/{group_snapshot_id}/action (reset_status, 3.19)"),
])
