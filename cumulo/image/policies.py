"""Image's default policy rules: Glance's rule names and its current defaults (secure RBAC as Glance
ships them: a project's reader lists and reads, its member creates, changes, uploads, downloads and
shares, the project an image is shared with answers the invitation, an admin anywhere does
everything; metadata definitions are changed by admins and read by everyone who sees them; the
tasks API, copy-image, removing a store's copy and the image cache are an admin's).

The target of an image rule is the image: ``project_id`` and ``owner`` are its owner, ``visibility``
its visibility and ``member_id`` the caller's project when the image reaches it as another
project's.  Three cumulo names cover what Glance serves with no rule (schemas, the info calls).
Override any rule in the file named by ``[policy] file``; ``cumulo policy show`` prints the effective
rules of every service.
"""

from __future__ import annotations

from cumulo.core.http.authz import Rule

ADMIN = "rule:context_is_admin"
ADMIN_OR_MEMBER = "rule:context_is_admin or (role:member and project_id:%(project_id)s)"
ADMIN_OR_READER = "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"
ADMIN_OR_READER_OR_PUBLIC = ("rule:context_is_admin or (role:reader and (project_id:%(project_id)s or "
                             "'public':%(visibility)s))")
METADEF_ADMIN = "rule:metadef_admin"
REACHABLE = ("project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or "
             "'public':%(visibility)s or 'shared':%(visibility)s")
IMAGE_READER = f"rule:context_is_admin or (role:reader and ({REACHABLE}))"
IMAGE_MEMBER = f"rule:context_is_admin or (role:member and ({REACHABLE}))"

MESSAGE = "You are not authorized to complete {rule} action."

RULES: list[Rule] = [
    Rule("default", "", "The rule of calls with no rule of their own"),
    Rule("context_is_admin", "role:admin", "Who counts as an admin (any project)"),
    Rule("service_api", "role:service or role:admin", "A service user (service-to-service calls), or an admin"),
    Rule("metadef_default", "", "Metadata definitions: the default"),
    Rule("metadef_admin", "rule:context_is_admin", "Metadata definitions: who changes them"),
    Rule("image:get_schema", "", "GET /v2/schemas/... (Glance checks no rule: any authenticated user)"),
    Rule("image:get_info", "", "GET /v2/info/import, /v2/info/stores (Glance checks no rule)"),
    Rule("image:get_usage", ADMIN_OR_READER, "GET /v2/info/usage: the caller's project's image quotas"),
    Rule("add_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
         "POST /v2/images"),
    Rule("get_images", ADMIN_OR_READER, "GET /v2/images"),
    Rule("get_image", IMAGE_READER,
         "GET /v2/images/{image_id} (and its tasks)"),
    Rule("modify_image", ADMIN_OR_MEMBER, "PATCH /v2/images/{image_id}, its tags, PUT .../stage, POST .../import"),
    Rule("delete_image", ADMIN_OR_MEMBER, "DELETE /v2/images/{image_id}"),
    Rule("deactivate", ADMIN_OR_MEMBER, "POST /v2/images/{image_id}/actions/deactivate"),
    Rule("reactivate", ADMIN_OR_MEMBER, "POST /v2/images/{image_id}/actions/reactivate"),
    Rule("upload_image", ADMIN_OR_MEMBER, "PUT /v2/images/{image_id}/file"),
    Rule("download_image", IMAGE_MEMBER,
         "GET /v2/images/{image_id}/file"),
    Rule("add_member", ADMIN_OR_MEMBER, "POST /v2/images/{image_id}/members"),
    Rule("get_members",
         "rule:context_is_admin or role:reader and (project_id:%(project_id)s or "
         "project_id:%(member_id)s)",
         "GET /v2/images/{image_id}/members"),
    Rule("get_member",
         "rule:context_is_admin or role:reader and (project_id:%(project_id)s or "
         "project_id:%(member_id)s)",
         "GET /v2/images/{image_id}/members/{member_id}"),
    Rule("modify_member", "rule:context_is_admin or (role:member and project_id:%(member_id)s)",
         "PUT /v2/images/{image_id}/members/{member_id} (the member answers)"),
    Rule("delete_member", ADMIN_OR_MEMBER, "DELETE /v2/images/{image_id}/members/{member_id}"),
    Rule("tasks_api_access", ADMIN, "POST /v2/tasks, GET /v2/tasks, GET /v2/tasks/{task_id}: the tasks API at all"),
    Rule("get_task", "rule:default", "GET /v2/tasks/{task_id}"),
    Rule("get_tasks", "rule:default", "GET /v2/tasks"),
    Rule("copy_image", ADMIN, "POST /v2/images/{image_id}/import with the copy-image method"),
    Rule("get_image_location", ADMIN_OR_READER, "DELETE /v2/stores/{store_id}/{image_id} (seeing the copies)"),
    Rule("delete_image_location", ADMIN, "DELETE /v2/stores/{store_id}/{image_id}: remove one store's copy"),
    Rule("stores_info_detail", "rule:context_is_admin or rule:service_api", "GET /v2/info/stores/detail"),
    Rule("cache_list", ADMIN, "GET /v2/cache"),
    Rule("cache_image", ADMIN, "PUT /v2/cache/{image_id}"),
    Rule("cache_delete", ADMIN, "DELETE /v2/cache, DELETE /v2/cache/{image_id}"),
    Rule("add_task", "rule:default", "POST /v2/tasks"),
    Rule("get_metadef_namespace", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef namespace"),
    Rule("get_metadef_namespaces", ADMIN_OR_READER, "GET /v2/metadefs/...: get metadef namespaces"),
    Rule("modify_metadef_namespace", METADEF_ADMIN, "PUT /v2/metadefs/...: modify metadef namespace"),
    Rule("add_metadef_namespace", METADEF_ADMIN, "POST /v2/metadefs/...: add metadef namespace"),
    Rule("delete_metadef_namespace", METADEF_ADMIN, "DELETE /v2/metadefs/...: delete metadef namespace"),
    Rule("get_metadef_object", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef object"),
    Rule("get_metadef_objects", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef objects"),
    Rule("modify_metadef_object", METADEF_ADMIN, "PUT /v2/metadefs/...: modify metadef object"),
    Rule("add_metadef_object", METADEF_ADMIN, "POST /v2/metadefs/...: add metadef object"),
    Rule("delete_metadef_object", METADEF_ADMIN, "DELETE /v2/metadefs/...: delete metadef object"),
    Rule("list_metadef_resource_types", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: list metadef resource types"),
    Rule("get_metadef_resource_type", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef resource type"),
    Rule("add_metadef_resource_type_association", METADEF_ADMIN,
         "POST /v2/metadefs/...: add metadef resource type association"),
    Rule("remove_metadef_resource_type_association", METADEF_ADMIN,
         "DELETE /v2/metadefs/...: remove metadef resource type association"),
    Rule("get_metadef_property", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef property"),
    Rule("get_metadef_properties", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef properties"),
    Rule("modify_metadef_property", METADEF_ADMIN, "PUT /v2/metadefs/...: modify metadef property"),
    Rule("add_metadef_property", METADEF_ADMIN, "POST /v2/metadefs/...: add metadef property"),
    Rule("remove_metadef_property", METADEF_ADMIN, "DELETE /v2/metadefs/...: remove metadef property"),
    Rule("get_metadef_tag", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef tag"),
    Rule("get_metadef_tags", ADMIN_OR_READER_OR_PUBLIC, "GET /v2/metadefs/...: get metadef tags"),
    Rule("modify_metadef_tag", METADEF_ADMIN, "PUT /v2/metadefs/...: modify metadef tag"),
    Rule("add_metadef_tag", METADEF_ADMIN, "POST /v2/metadefs/...: add metadef tag"),
    Rule("add_metadef_tags", METADEF_ADMIN, "POST /v2/metadefs/...: add metadef tags"),
    Rule("delete_metadef_tag", METADEF_ADMIN, "DELETE /v2/metadefs/...: delete metadef tag"),
    Rule("delete_metadef_tags", METADEF_ADMIN, "DELETE /v2/metadefs/...: delete metadef tags"),
]
