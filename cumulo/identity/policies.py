"""Identity's default policy rules (oslo.policy syntax), Keystone's defaults in spirit.

An admin anywhere is a cloud admin (Keystone with enforce_scope off); readers on the system may
read everything; domain readers read their domain; users may read and manage what is their own
(their user, projects, application credentials, password, tokens).  Override any rule in the file
named by ``[policy] file``; ``cumulo policy show`` prints the effective rules.
"""

ADMIN = "role:admin"
SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"
DOMAIN_READER = "rule:system_reader or (role:reader and domain_id:%(target.domain_id)s)"
OWNER = "user_id:%(target.user_id)s"

RULES: dict[str, str] = {
    "admin_required": ADMIN,
    "service_role": "role:service",
    "service_or_admin": "rule:admin_required or rule:service_role",
    "system_reader": SYSTEM_READER,
    "domain_reader": DOMAIN_READER,
    "owner": OWNER,
    "admin_or_owner": "rule:admin_required or rule:owner",
    "token_subject": "user_id:%(target.token.user_id)s",

    "identity:validate_token": "rule:service_or_admin or rule:token_subject or "
                               "(role:reader and system_scope:all)",
    "identity:check_token": "rule:service_or_admin or rule:token_subject or "
                            "(role:reader and system_scope:all)",
    "identity:revoke_token": "rule:admin_required or rule:service_role or rule:token_subject",
    "identity:get_auth_catalog": "",
    "identity:get_auth_projects": "",
    "identity:get_auth_domains": "",
    "identity:get_auth_system": "",

    "identity:get_domain": "rule:system_reader or token.domain.id:%(target.domain.id)s or "
                           "token.project.domain.id:%(target.domain.id)s",
    "identity:list_domains": "rule:system_reader",
    "identity:create_domain": ADMIN,
    "identity:update_domain": ADMIN,
    "identity:delete_domain": ADMIN,
    "identity:domain_config": ADMIN,
    "identity:get_domain_config_default": "",

    "identity:get_project": "rule:domain_reader or project_id:%(target.project.id)s",
    "identity:list_projects": "rule:domain_reader",
    "identity:list_user_projects": "rule:domain_reader or rule:owner",
    "identity:create_project": ADMIN,
    "identity:update_project": ADMIN,
    "identity:delete_project": ADMIN,
    "identity:project_tags_read": "rule:domain_reader or project_id:%(target.project.id)s",
    "identity:project_tags_write": ADMIN,

    "identity:get_user": "rule:domain_reader or user_id:%(target.user.id)s",
    "identity:list_users": "rule:domain_reader",
    "identity:create_user": ADMIN,
    "identity:update_user": ADMIN,
    "identity:delete_user": ADMIN,
    "identity:list_groups_for_user": "rule:domain_reader or rule:owner",

    "identity:get_group": "rule:domain_reader",
    "identity:list_groups": "rule:domain_reader",
    "identity:list_users_in_group": "rule:domain_reader",
    "identity:create_group": ADMIN,
    "identity:update_group": ADMIN,
    "identity:delete_group": ADMIN,
    "identity:add_user_to_group": ADMIN,
    "identity:remove_user_from_group": ADMIN,
    "identity:check_user_in_group": "rule:domain_reader",

    "identity:get_role": "rule:system_reader",
    "identity:list_roles": "rule:system_reader",
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:implied_roles_read": "rule:system_reader",
    "identity:implied_roles_write": ADMIN,
    "identity:list_grants": "rule:domain_reader",
    "identity:check_grant": "rule:domain_reader",
    "identity:create_grant": ADMIN,
    "identity:revoke_grant": ADMIN,
    "identity:list_role_assignments": "rule:domain_reader",
    "identity:list_role_assignments_for_tree": "rule:domain_reader or "
                                               "project_id:%(target.project.id)s",

    "identity:catalog_read": "rule:system_reader",
    "identity:get_region": "",
    "identity:list_regions": "",
    "identity:catalog_write": ADMIN,

    "identity:application_credential_read": "rule:system_reader or rule:owner",
    "identity:application_credential_write": "rule:admin_or_owner",
    "identity:access_rule_read": "rule:system_reader or rule:owner",
    "identity:access_rule_write": "rule:admin_or_owner",

    "identity:credential_read": "rule:system_reader or rule:owner",
    "identity:credential_write": "rule:admin_or_owner",
    "identity:policy_read": "rule:system_reader",
    "identity:policy_write": ADMIN,
    "identity:trust_read": "rule:admin_required or user_id:%(target.trust.trustor_user_id)s or "
                           "user_id:%(target.trust.trustee_user_id)s",
    "identity:trust_create": "user_id:%(target.trust.trustor_user_id)s",
    "identity:trust_delete": "rule:admin_required or user_id:%(target.trust.trustor_user_id)s",
    "identity:limits_read": "",
    "identity:limits_write": ADMIN,
    "identity:endpoint_groups": ADMIN,
    "identity:oauth_consumers": ADMIN,
}
