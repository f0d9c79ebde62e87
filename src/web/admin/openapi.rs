//! The OpenAPI 3 description of `/api/v1` (served at `/api/v1/openapi.json`). `tests/admin_api.rs`
//! checks it against the router: every route described answers, and every route of
//! `api::routes` is described.

use serde_json::{Value, json};

fn s(t: &str) -> Value {
    json!({"type": t})
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An input object: every field may be left out or be `null` (unchanged, or the default), unless
/// `required`.
fn input(props: Value, required: &[&str]) -> Value {
    let mut props = props;
    for (name, schema) in props
        .as_object_mut()
        .expect("invariant: properties are an object")
    {
        if required.contains(&name.as_str()) {
            continue;
        }
        *schema = json!({"anyOf": [schema.clone(), {"type": "null"}]});
    }
    object(props, required)
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn list_of(item: &str) -> Value {
    object(
        json!({"items": {"type": "array", "items": r(item)}, "total": s("integer"), "offset": s("integer"), "limit": s("integer")}),
        &["items", "total", "offset", "limit"],
    )
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": r("Error")}}})
}

fn answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}})
}

fn page_params(search: bool) -> Vec<Value> {
    let mut v = vec![
        json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::api::MAX_OFFSET}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}),
    ];
    if search {
        v.push(json!({"name": "q", "in": "query", "schema": {"type": "string"}}));
    }
    v
}

/// The version a change is based on (a stale one gets 409).
fn version_in() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": super::api::MAX_VERSION})
}

fn if_match() -> Value {
    json!({"name": "If-Match", "in": "header", "schema": {"type": "string", "pattern": "^(W/)?(\"[0-9]{1,15}\"|[0-9]{1,15})$"}, "description": "The version the change is based on (`12`, `\"12\"` or `W/\"12\"`)."})
}

/// The responses every operation may give, plus its own.
fn responses(mut own: Value, change: bool) -> Value {
    let m = own
        .as_object_mut()
        .expect("invariant: responses are an object");
    m.insert("401".into(), error("no or unknown credentials"));
    m.insert(
        "403".into(),
        error("not allowed for this role (or CSRF token missing)"),
    );
    m.insert("503".into(), error("the database is unavailable"));
    m.insert(
        "400".into(),
        error("unreadable query parameters, body or If-Match"),
    );
    if change {
        m.insert("422".into(), error("a field is wrong (`field` names it)"));
        m.insert("409".into(), error("duplicate, in use, or a stale version"));
    }
    own
}

fn op(summary: &str, params: Vec<Value>, request: Option<Value>, ok: Value, change: bool) -> Value {
    let mut o =
        json!({"summary": summary, "parameters": params, "responses": responses(ok, change)});
    if let Some(b) = request {
        o["requestBody"] = b;
    }
    o
}

/// The document.
pub fn document() -> String {
    let sp = object(
        json!({
            "id": s("integer"), "host_url": s("string"), "entity_id": s("string"), "acs_url": s("string"),
            "slo_url": s("string"), "metadata_url": s("string"), "has_key": s("boolean"),
            "certificate": {"oneOf": [r("Certificate"), {"type": "null"}]},
            "next_certificate": {"oneOf": [r("Certificate"), {"type": "null"}]}, "version": s("integer")
        }),
        &[
            "id",
            "host_url",
            "entity_id",
            "acs_url",
            "slo_url",
            "metadata_url",
            "has_key",
            "certificate",
            "version",
        ],
    );
    let sp_input = input(
        json!({
            "host_url": s("string"), "entity_id": s("string"), "certificate": s("string"),
            "private_key": {"type": "string", "writeOnly": true}, "generate_key": s("boolean"),
            "remove_key": s("boolean"), "next_certificate": s("string"),
            "next_private_key": {"type": "string", "writeOnly": true}, "generate_next_key": s("boolean"),
            "promote_next": s("boolean"), "drop_next": s("boolean"), "version": version_in()
        }),
        &[],
    );
    let cert = object(
        json!({"subject": s("string"), "sha256": s("string"), "not_after": nullable("string"), "expires_soon": s("boolean")}),
        &["subject", "sha256", "not_after", "expires_soon"],
    );
    let idp_fields = json!({
        "name": s("string"), "entity_id": s("string"), "sso_url": s("string"),
        "sso_binding": {"type": "string", "enum": ["redirect", "post"]},
        "slo_url": s("string"), "slo_response_url": s("string"),
        "slo_binding": {"type": "string", "enum": ["redirect", "post"]},
        "username_mapping": s("string"), "certificates": strings(), "fingerprint": s("string"),
        "fingerprint_algorithm": {"type": "string", "enum": ["sha1", "sha256", "sha384", "sha512"]},
        "allow_sha1": s("boolean"), "name_id_format": s("string"), "authn_context": s("string"),
        "metadata_url": s("string"), "version": version_in()
    });
    let mut import_fields = idp_fields.clone();
    import_fields["metadata"] = s("string");
    import_fields["entity"] = s("string");
    let idp = json!({"type": "object", "required": ["id", "name", "entity_id", "sso_url", "sso_binding", "username_mapping", "trust", "version"],
    "properties": {
        "id": s("integer"), "name": s("string"), "entity_id": s("string"), "sso_url": s("string"),
        "sso_binding": s("string"), "slo_url": nullable("string"), "slo_response_url": nullable("string"),
        "slo_binding": s("string"), "username_mapping": s("string"), "trust": s("object"),
        "allow_sha1": s("boolean"), "name_id_format": nullable("string"), "authn_context": nullable("string"),
        "metadata_url": nullable("string"), "endpoints": s("object"), "version": s("integer"),
        "metadata_status": {"oneOf": [object(json!({"checked_at": s("string"), "error": nullable("string")}), &["checked_at", "error"]), {"type": "null"}]}
    }});
    let preview = json!({"type": "object", "required": ["entity_id", "entities", "sso", "slo", "certificates", "claim_types"],
        "properties": {"entity_id": nullable("string"), "entities": strings(), "sso": s("array"), "slo": s("array"),
            "certificates": {"type": "array", "items": r("Certificate")}, "claim_types": strings(), "name_id_formats": strings()}});
    let tenant_fields = json!({
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "display_name": s("string"), "login_domains": strings(), "sso_enabled": s("boolean"),
        "idp": s("string"), "slo_enabled": s("boolean"), "idp_initiated": s("boolean"),
        "strip_domain": s("boolean"), "case_insensitive": s("boolean"), "version": version_in()
    });
    let tenant = json!({"type": "object", "required": ["name", "display_name", "login_domains", "sso_enabled", "idp", "slo_enabled", "version"],
        "properties": {"name": s("string"), "display_name": s("string"), "login_domains": strings(), "sso_enabled": s("boolean"),
            "idp": nullable("string"), "slo_enabled": s("boolean"), "idp_initiated": s("boolean"), "strip_domain": s("boolean"),
            "case_insensitive": s("boolean"), "version": s("integer")}});
    let user_fields = json!({
        "username": s("string"), "display_name": s("string"), "circuit_user": s("string"),
        "password": {"type": "string", "writeOnly": true}, "roles": {"type": "array", "items": {"type": "string", "enum": ["agent", "tenant-manager", "central-admin"]}},
        "version": version_in()
    });
    let user = json!({"type": "object", "required": ["tenant", "username", "display_name", "roles", "has_password", "version"],
        "properties": {"tenant": s("string"), "username": s("string"), "display_name": s("string"), "circuit_user": nullable("string"),
            "roles": strings(), "has_password": s("boolean"), "must_change_password": s("boolean"), "version": s("integer")}});
    let client = json!({"type": "object", "required": ["id", "name", "token_prefix", "role", "created_at", "version"],
        "properties": {"id": s("integer"), "name": s("string"), "token_prefix": s("string"), "role": s("string"), "tenant": nullable("string"),
            "created_at": s("string"), "last_used_at": nullable("string"), "version": s("integer"), "token": s("string")}});
    let client_input = input(
        json!({"name": s("string"), "role": {"type": "string", "enum": ["central-admin", "tenant-manager"]}, "tenant": s("string"), "token": {"type": "string", "writeOnly": true}}),
        &["name"],
    );
    let session = json!({"type": "object", "required": ["handle", "tenant", "username", "method", "since", "expires"],
        "properties": {"handle": s("string"), "tenant": s("string"), "username": s("string"), "display_name": s("string"),
            "method": s("string"), "since": s("string"), "expires": s("string")}});
    let failure = json!({"type": "object", "required": ["at", "reference", "endpoint", "reason", "detail"],
        "properties": {"at": s("string"), "reference": s("string"), "endpoint": s("string"), "tenant": nullable("string"),
            "idp": nullable("string"), "reason": s("string"), "detail": s("string"), "client": nullable("string"),
            "repeats": s("integer"), "username": nullable("string")}});
    let audit = json!({"type": "object", "required": ["id", "at", "actor", "action", "object"],
        "properties": {"id": s("integer"), "at": {"type": "string", "description": "RFC 3339"}, "actor": s("string"), "action": s("string"), "object": s("string"),
            "before": nullable("string"), "after": nullable("string")}});
    let err = object(
        json!({"error": s("string"), "field": nullable("string"), "message": s("string")}),
        &["error", "field", "message"],
    );
    let step = json!({"type": "object", "required": ["step", "verdict", "values"], "properties": {"step": s("string"),
        "verdict": {"type": "string", "enum": ["passed", "failed", "not reached"]}, "code": nullable("string"), "message": nullable("string"),
        "values": {"type": "array", "items": {"type": "array", "items": s("string")}}}});
    let trace = json!({"type": "object", "required": ["accepted", "evaluated_at", "steps"],
        "properties": {"accepted": s("boolean"), "evaluated_at": s("string"), "steps": {"type": "array", "items": step}}});
    let trace_input = input(
        json!({"response": s("string"), "tenant": s("string"), "at": {"type": "string", "description": "RFC 3339"}}),
        &["response"],
    );
    let no_content = json!({"204": {"description": "done"}});
    let not_found = |mut v: Value| {
        v["404"] = error("no such object");
        v
    };
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "ssogate API", "version": "1", "description": "Administration of ssogate: the operations of the Web Manager and the CLI. Authenticate with `Authorization: Bearer TOKEN` (an API client's token) or a Web Manager session (then every change needs the `X-CSRF-Token` header)."},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/me": {"get": op("Who is calling", vec![], None, json!({"200": answer("the caller", s("object"))}), false)},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {"schema": s("object")}}}}}},
            "/api/v1/settings": {
                "get": op("Shared settings", vec![], None, json!({"200": answer("settings", r("Settings"))}), false),
                "put": op("Change shared settings", vec![], Some(body(r("SettingsInput"))), json!({"200": answer("settings", r("Settings"))}), true)
            },
            "/api/v1/sps": {
                "get": op("List service providers", page_params(false), None, json!({"200": answer("a page", list_of("ServiceProvider"))}), false),
                "post": op("Add a service provider", vec![], Some(body(r("ServiceProviderInput"))), json!({"201": answer("added", r("ServiceProvider"))}), true)
            },
            "/api/v1/sps/{id}": {
                "get": op("A service provider (by ID, entity ID or host URL)", vec![path_param("id")], None, not_found(json!({"200": answer("it", r("ServiceProvider"))})), false),
                "put": op("Change a service provider", vec![path_param("id"), if_match()], Some(body(r("ServiceProviderInput"))), not_found(json!({"200": answer("changed", r("ServiceProvider"))})), true),
                "delete": op("Delete a service provider (never the last)", vec![path_param("id")], None, not_found(no_content.clone()), true)
            },
            "/api/v1/sps/{id}/metadata": {"get": op("The SP's metadata XML", vec![path_param("id")], None, not_found(json!({"200": {"description": "metadata", "content": {"application/samlmetadata+xml": {"schema": s("string")}}}})), false)},
            "/api/v1/idps": {
                "get": op("List identity providers", page_params(false), None, json!({"200": answer("a page", list_of("IdentityProvider"))}), false),
                "post": op("Add an identity provider by hand", vec![], Some(body(r("IdentityProviderInput"))), json!({"201": answer("added", r("IdentityProvider"))}), true)
            },
            "/api/v1/idps/import": {"post": op("Import an identity provider from metadata", vec![], Some(body(r("ImportInput"))), json!({"201": answer("added", r("IdentityProvider"))}), true)},
            "/api/v1/idps/preview": {"post": op("What an import would take (nothing is stored)", vec![], Some(body(r("PreviewInput"))), json!({"200": answer("the preview", r("Preview"))}), true)},
            "/api/v1/idps/{name}": {
                "get": op("An identity provider", vec![path_param("name")], None, not_found(json!({"200": answer("it", r("IdentityProvider"))})), false),
                "put": op("Change an identity provider", vec![path_param("name"), if_match()], Some(body(r("IdentityProviderInput"))), not_found(json!({"200": answer("changed", r("IdentityProvider"))})), true),
                "delete": op("Delete an identity provider (refused while a tenant uses it)", vec![path_param("name")], None, not_found(no_content.clone()), true)
            },
            "/api/v1/idps/{name}/refresh": {"post": op("Fetch the IdP's metadata URL now (as every 6 hours): new signing certificates are taken (audit log); a failure is kept on the IdP and the trusted certificates stay", vec![path_param("name")], None, not_found(json!({"200": answer("the outcome and the IdP", object(json!({"outcome": {"type": "string", "enum": ["unchanged", "changed", "fingerprint", "failed"]}, "error": nullable("string"), "idp": r("IdentityProvider")}), &["outcome", "error", "idp"]))})), true)},
            "/api/v1/tenants": {
                "get": op("List tenants", page_params(false), None, json!({"200": answer("a page", list_of("Tenant"))}), false),
                "post": op("Add a tenant", vec![], Some(body(r("TenantInput"))), json!({"201": answer("added", r("Tenant"))}), true)
            },
            "/api/v1/tenants/{tenant}": {
                "get": op("A tenant", vec![path_param("tenant")], None, not_found(json!({"200": answer("it", r("Tenant"))})), false),
                "put": op("Configure a tenant", vec![path_param("tenant"), if_match()], Some(body(r("TenantInput"))), not_found(json!({"200": answer("changed", r("Tenant"))})), true),
                "delete": op("Delete a tenant (refused while it has users)", vec![path_param("tenant")], None, not_found(no_content.clone()), true)
            },
            "/api/v1/tenants/{tenant}/users": {
                "get": op("List a tenant's users", [vec![path_param("tenant")], page_params(true)].concat(), None, not_found(json!({"200": answer("a page", list_of("User"))})), false),
                "post": op("Add a user", vec![path_param("tenant")], Some(body(r("UserInput"))), not_found(json!({"201": answer("added", r("User"))})), true)
            },
            "/api/v1/tenants/{tenant}/users/{username}": {
                "get": op("A user", vec![path_param("tenant"), path_param("username")], None, not_found(json!({"200": answer("it", r("User"))})), false),
                "put": op("Change a user", vec![path_param("tenant"), path_param("username"), if_match()], Some(body(r("UserInput"))), not_found(json!({"200": answer("changed", r("User"))})), true),
                "delete": op("Delete a user (ends their sessions)", vec![path_param("tenant"), path_param("username")], None, not_found(no_content.clone()), true)
            },
            "/api/v1/tenants/{tenant}/users/{username}/totp": {"delete": op("Reset a user's two-step verification (a lost device)", vec![path_param("tenant"), path_param("username")], None, not_found(no_content.clone()), true)},
            "/api/v1/tenants/{tenant}/captures": {
                "get": op("The tenant's captured failing responses, newest first (without the responses), and until when it captures", vec![path_param("tenant")], None, not_found(json!({"200": answer("captures", object(json!({"capturing_until": nullable("string"), "items": {"type": "array", "items": r("Capture")}}), &["capturing_until", "items"]))})), false),
                "post": op("Capture the tenant's failing SAML responses for 15 minutes (kept 24 hours, the latest 50)", vec![path_param("tenant")], None, not_found(json!({"200": answer("until when", object(json!({"capturing_until": nullable("string")}), &["capturing_until"]))})), true),
                "delete": op("Stop capturing", vec![path_param("tenant")], None, not_found(no_content.clone()), true)
            },
            "/api/v1/tenants/{tenant}/captures/{id}": {"get": op("One captured response, with the SAMLResponse as posted (trace it with /api/v1/trace)", vec![path_param("tenant"), path_param("id")], None, not_found(json!({"200": answer("it", r("Capture"))})), false)},
            "/api/v1/tenants/{tenant}/circuit": {
                "get": op("The tenant's Circuit sign-on (the client secret only as set or not)", vec![path_param("tenant")], None, not_found(json!({"200": answer("it", r("Circuit"))})), false),
                "put": op("Configure the tenant's Circuit sign-on (a tenant manager: their own tenant's); an empty or absent client secret keeps the stored one", vec![path_param("tenant"), if_match()], Some(body(r("CircuitInput"))), not_found(json!({"200": answer("changed", r("Circuit"))})), true)
            },
            "/api/v1/tenants/{tenant}/sessions": {"get": op("Signed-in agents of a tenant, newest first (`more`: another page follows)", [vec![path_param("tenant")], page_params(false)].concat(), None, not_found(json!({"200": answer("a page", object(json!({"items": {"type": "array", "items": r("Session")}, "more": s("boolean"), "offset": s("integer"), "limit": s("integer")}), &["items", "more", "offset", "limit"]))})), false)},
            "/api/v1/tenants/{tenant}/sessions/{handle}": {"delete": op("End a session", vec![path_param("tenant"), path_param("handle")], None, not_found(no_content.clone()), true)},
            "/api/v1/tenants/{tenant}/failures": {"get": op("Recent sign-in failures of a tenant", [vec![path_param("tenant")], page_params(true)].concat(), None, not_found(json!({"200": answer("a page", list_of("Failure"))})), false)},
            "/api/v1/api-clients": {
                "get": op("List API clients", page_params(false), None, json!({"200": answer("a page", list_of("ApiClient"))}), false),
                "post": op("Add an API client (its token is in the answer, once)", vec![], Some(body(r("ApiClientInput"))), json!({"201": answer("added", r("ApiClient"))}), true)
            },
            "/api/v1/api-clients/{name}": {"delete": op("Delete an API client", vec![path_param("name")], None, not_found(no_content.clone()), true)},
            "/api/v1/api-clients/{name}/regenerate": {"post": op("A new token (in the answer, once)", vec![path_param("name"), if_match()], Some(json!({"required": false, "content": {"application/json": {"schema": input(json!({"token": s("string"), "version": version_in()}), &[])}}})), not_found(json!({"200": answer("the client and its new token", r("ApiClient"))})), true)},
            "/api/v1/trace": {"post": op("The SAML tracer: every check of a response, with its verdict and values (nothing is consumed or recorded)", vec![], Some(body(trace_input)), json!({"200": answer("the trace", r("Trace"))}), true)},
            "/api/v1/events": {"get": op("Sign-ins, refusals and changes as they happen (Server-Sent Events; at most 64 streams at once, 503 beyond)", vec![], None, json!({"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": s("string")}}}}), false)},
            "/api/v1/audit": {"get": op("The audit log, newest first", vec![
                json!({"name": "object", "in": "query", "schema": {"type": "string"}}),
                json!({"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::api::MAX_OFFSET}}),
                json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}})
            ], None, json!({"200": answer("entries", object(json!({"items": {"type": "array", "items": r("AuditEntry")}, "next_before": nullable("integer")}), &["items", "next_before"]))}), false)}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": err, "Certificate": cert, "ServiceProvider": sp, "ServiceProviderInput": sp_input,
                "IdentityProvider": idp, "IdentityProviderInput": input(idp_fields, &[]),
                "ImportInput": input(import_fields, &["metadata"]),
                "PreviewInput": input(json!({"metadata": s("string"), "entity": s("string")}), &["metadata"]),
                "Preview": preview, "Tenant": tenant, "TenantInput": input(tenant_fields, &[]),
                "Circuit": object(json!({
                    "tenant": s("string"), "enabled": s("boolean"), "kind": {"type": "string", "enum": ["oauth2", "oidc"]},
                    "client_id": s("string"), "client_secret_set": s("boolean"), "portal_url": s("string"), "login_url": s("string"),
                    "callback_url": nullable("string"), "authorize_path": s("string"), "token_path": s("string"),
                    "profile_path": s("string"), "scope": s("string"), "profile_field": s("string"), "pkce": s("boolean"),
                    "token_auth": {"type": "string", "enum": ["post", "basic"]}, "version": s("integer")
                }), &["tenant", "enabled", "kind", "client_id", "client_secret_set", "portal_url", "login_url", "callback_url",
                      "authorize_path", "token_path", "profile_path", "scope", "profile_field", "pkce", "token_auth", "version"]),
                "CircuitInput": input(json!({
                    "enabled": s("boolean"), "kind": {"type": "string", "enum": ["oauth2", "oidc"]},
                    "client_id": {"type": "string", "maxLength": 128}, "client_secret": {"type": "string", "maxLength": 512},
                    "portal_url": s("string"), "login_url": s("string"), "authorize_path": s("string"), "token_path": s("string"),
                    "profile_path": s("string"), "scope": s("string"), "profile_field": s("string"), "pkce": s("boolean"),
                    "token_auth": {"type": "string", "enum": ["post", "basic"]}, "version": version_in()
                }), &[]),
                "User": user, "UserInput": input(user_fields, &[]), "ApiClient": client, "ApiClientInput": client_input,
                "Session": session, "Failure": failure, "AuditEntry": audit,
                "Settings": object(json!({"multi_tenant": s("boolean"), "admin_require_totp": s("boolean")}), &["multi_tenant", "admin_require_totp"]),
                "SettingsInput": input(json!({"multi_tenant": s("boolean"), "admin_require_totp": s("boolean")}), &[]),
                "Trace": trace,
                "Capture": object(json!({"id": s("integer"), "tenant": s("string"), "reference": s("string"), "at": s("string"), "reason": s("string"), "response": nullable("string")}), &["id", "tenant", "reference", "at", "reason", "response"])
            }
        }
    });
    let mut doc = doc;
    name_operations(&mut doc);
    link_created_objects(&mut doc);
    doc.to_string()
}

/// `operationId`s from method and path: `get_tenants_tenant_users`.
fn operation_id(method: &str, path: &str) -> String {
    let rest: String = path
        .trim_start_matches("/api/v1/")
        .chars()
        .filter(|c| !"{}".contains(*c))
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{method}_{rest}")
}

fn name_operations(doc: &mut Value) {
    let paths = doc["paths"]
        .as_object_mut()
        .expect("invariant: paths are an object");
    for (path, item) in paths.iter_mut() {
        let item = item
            .as_object_mut()
            .expect("invariant: a path item is an object");
        for (method, op) in item.iter_mut() {
            op["operationId"] = json!(operation_id(method, path));
        }
    }
}

/// (method, path) of an operation a link leads to.
type Target = (&'static str, &'static str);

/// OpenAPI links from what a `POST` creates to the operations on it, so that clients (and
/// schemathesis' stateful phase) can follow them.
fn link_created_objects(doc: &mut Value) {
    let tenant = json!({"tenant": "$response.body#/name"});
    let user = json!({"tenant": "$response.body#/tenant", "username": "$response.body#/username"});
    let idp = json!({"name": "$response.body#/name"});
    let sp = json!({"id": "$response.body#/id"});
    let links: [(&str, &[Target], &Value); 5] = [
        (
            "/api/v1/tenants",
            &[
                ("get", "/api/v1/tenants/{tenant}"),
                ("put", "/api/v1/tenants/{tenant}"),
                ("delete", "/api/v1/tenants/{tenant}"),
                ("get", "/api/v1/tenants/{tenant}/users"),
                ("post", "/api/v1/tenants/{tenant}/users"),
                ("get", "/api/v1/tenants/{tenant}/sessions"),
                ("get", "/api/v1/tenants/{tenant}/failures"),
            ],
            &tenant,
        ),
        (
            "/api/v1/tenants/{tenant}/users",
            &[
                ("get", "/api/v1/tenants/{tenant}/users/{username}"),
                ("put", "/api/v1/tenants/{tenant}/users/{username}"),
                ("delete", "/api/v1/tenants/{tenant}/users/{username}"),
            ],
            &user,
        ),
        (
            "/api/v1/idps",
            &[
                ("get", "/api/v1/idps/{name}"),
                ("put", "/api/v1/idps/{name}"),
                ("delete", "/api/v1/idps/{name}"),
            ],
            &idp,
        ),
        (
            "/api/v1/idps/import",
            &[
                ("get", "/api/v1/idps/{name}"),
                ("put", "/api/v1/idps/{name}"),
                ("delete", "/api/v1/idps/{name}"),
            ],
            &idp,
        ),
        (
            "/api/v1/sps",
            &[
                ("get", "/api/v1/sps/{id}"),
                ("put", "/api/v1/sps/{id}"),
                ("delete", "/api/v1/sps/{id}"),
                ("get", "/api/v1/sps/{id}/metadata"),
            ],
            &sp,
        ),
    ];
    for (from, targets, params) in links {
        let mut map = serde_json::Map::new();
        for (method, to) in targets {
            // Only the parameters the target's path has.
            let own: serde_json::Map<String, Value> = params
                .as_object()
                .expect("invariant: link parameters are an object")
                .iter()
                .filter(|(k, _)| to.contains(&format!("{{{k}}}")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            map.insert(
                operation_id(method, to),
                json!({"operationId": operation_id(method, to), "parameters": own}),
            );
        }
        doc["paths"][from]["post"]["responses"]["201"]["links"] = Value::Object(map);
    }
}
