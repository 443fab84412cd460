"""The dashboard's own rules: which panels a signed-in user may open.

They only gate the pages; every call a page makes is still authorized by the service it goes to,
with the user's own token.  A project panel needs any role in the token's project (a reader
sees, a member also gets the buttons that write); the admin panels need the admin role, as
Horizon's ``openstack_dashboard`` admin dashboard does.
"""

from __future__ import annotations

from cumulo.core.http.authz import Rule

RULES: list[Rule] = [
    Rule("dashboard:project_panel", "role:reader or role:member or role:manager or role:admin",
         "The project's pages (instances, volumes, networks, ...): any role in the project"),
    Rule("dashboard:admin_panel", "role:admin", "The admin pages (every project's resources, hypervisors, ...)"),
]
