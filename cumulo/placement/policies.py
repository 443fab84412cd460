"""Placement's default policy rules: Placement's rule names and its current defaults (everything is
the admin's or the service user's, as Nova and the other services call Placement with the service
role; a project's reader may read its own project's usages).

Override any rule in the file named by ``[policy] file``; ``cumulo policy show`` prints the effective
rules of every service.
"""

from __future__ import annotations

from cumulo.core.http.authz import Rule

ADMIN_OR_SERVICE = "rule:admin_or_service_api"
ADMIN_OR_PROJECT_READER_OR_SERVICE = "rule:admin_or_project_reader_or_service_api"

MESSAGE = "Policy does not allow {rule} to be performed."

RULES: list[Rule] = [
    Rule("admin_api", "role:admin", "An admin (any project)"),
    Rule("service_api", "role:service", "A service user (service-to-service calls)"),
    Rule("admin_or_service_api", "role:admin or role:service", "An admin or a service user"),
    Rule("project_reader_api", "role:reader and project_id:%(project_id)s", "A reader of the target project"),
    Rule("admin_or_project_reader_or_service_api", "role:admin or rule:project_reader_api or role:service",
         "An admin, a service user or a reader of the target project"),
    Rule("placement:resource_providers:aggregates:list", ADMIN_OR_SERVICE, "GET /resource_providers/{uuid}/aggregates"),
    Rule("placement:resource_providers:aggregates:update", ADMIN_OR_SERVICE,
         "PUT /resource_providers/{uuid}/aggregates"),
    Rule("placement:allocations:manage", ADMIN_OR_SERVICE, "POST /allocations"),
    Rule("placement:allocations:list", ADMIN_OR_SERVICE, "GET /allocations/{consumer_uuid}"),
    Rule("placement:allocations:update", ADMIN_OR_SERVICE, "PUT /allocations/{consumer_uuid}"),
    Rule("placement:allocations:delete", ADMIN_OR_SERVICE, "DELETE /allocations/{consumer_uuid}"),
    Rule("placement:resource_providers:allocations:list", ADMIN_OR_SERVICE,
         "GET /resource_providers/{uuid}/allocations"),
    Rule("placement:allocation_candidates:list", ADMIN_OR_SERVICE, "GET /allocation_candidates"),
    Rule("placement:resource_providers:inventories:list", ADMIN_OR_SERVICE,
         "GET /resource_providers/{uuid}/inventories"),
    Rule("placement:resource_providers:inventories:create", ADMIN_OR_SERVICE,
         "POST /resource_providers/{uuid}/inventories"),
    Rule("placement:resource_providers:inventories:show", ADMIN_OR_SERVICE,
         "GET /resource_providers/{uuid}/inventories/{resource_class}"),
    Rule("placement:resource_providers:inventories:update", ADMIN_OR_SERVICE,
         "PUT /resource_providers/{uuid}/inventories"),
    Rule("placement:resource_providers:inventories:delete", ADMIN_OR_SERVICE,
         "DELETE /resource_providers/{uuid}/inventories"),
    Rule("placement:resource_classes:list", ADMIN_OR_SERVICE, "GET /resource_classes"),
    Rule("placement:resource_classes:create", ADMIN_OR_SERVICE, "POST /resource_classes"),
    Rule("placement:resource_classes:show", ADMIN_OR_SERVICE, "GET /resource_classes/{name}"),
    Rule("placement:resource_classes:update", ADMIN_OR_SERVICE, "PUT /resource_classes/{name}"),
    Rule("placement:resource_classes:delete", ADMIN_OR_SERVICE, "DELETE /resource_classes/{name}"),
    Rule("placement:resource_providers:list", ADMIN_OR_SERVICE, "GET /resource_providers"),
    Rule("placement:resource_providers:create", ADMIN_OR_SERVICE, "POST /resource_providers"),
    Rule("placement:resource_providers:show", ADMIN_OR_SERVICE, "GET /resource_providers/{uuid}"),
    Rule("placement:resource_providers:update", ADMIN_OR_SERVICE, "PUT /resource_providers/{uuid}"),
    Rule("placement:resource_providers:delete", ADMIN_OR_SERVICE, "DELETE /resource_providers/{uuid}"),
    Rule("placement:traits:list", ADMIN_OR_SERVICE, "GET /traits"),
    Rule("placement:traits:show", ADMIN_OR_SERVICE, "GET /traits/{name}"),
    Rule("placement:traits:update", ADMIN_OR_SERVICE, "PUT /traits/{name}"),
    Rule("placement:traits:delete", ADMIN_OR_SERVICE, "DELETE /traits/{name}"),
    Rule("placement:resource_providers:traits:list", ADMIN_OR_SERVICE, "GET /resource_providers/{uuid}/traits"),
    Rule("placement:resource_providers:traits:update", ADMIN_OR_SERVICE, "PUT /resource_providers/{uuid}/traits"),
    Rule("placement:resource_providers:traits:delete", ADMIN_OR_SERVICE, "DELETE /resource_providers/{uuid}/traits"),
    Rule("placement:resource_providers:usages", ADMIN_OR_SERVICE, "GET /resource_providers/{uuid}/usages"),
    Rule("placement:usages", ADMIN_OR_PROJECT_READER_OR_SERVICE, "GET /usages"),
]
