//! The audit log: one record per state-changing action through the API,
//! the UI or the CLI's admin commands, and per failed login — who did it
//! (the user and the credential), from where, what (the action, the
//! resource, its owner when the actor is not, the request's fields that
//! name resources) and how it ended. Nothing secret: no password, no token
//! secret, no request body beyond the fields that name resources
//! ([`NAMING_FIELDS`]). Pure; `service::Audit` records them.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Millis;

super::spelled_enum! {
    /// How an action ended.
    pub enum AuditOutcome("audit outcome") {
        /// Done (a 2xx or 3xx answer).
        Done = "done",
        /// Refused: bad input, no permission, a conflict, a quota (4xx).
        Refused = "refused",
        /// Failed on Berth's side (5xx).
        Failed = "failed",
    }
}

super::spelled_enum! {
    /// What the actor proved who they are with.
    pub enum Credential("credential") {
        /// The session cookie (or token) of a login.
        Session = "session",
        /// An API token (`berth token create`, the account page).
        Token = "token",
        /// The `berth` command's admin commands, on the data directory.
        Cli = "cli",
        /// Nothing (or nothing valid).
        None = "none",
    }
}

impl AuditOutcome {
    /// The outcome an HTTP status means.
    pub fn of_status(status: u16) -> AuditOutcome {
        match status {
            ..=399 => AuditOutcome::Done,
            400..=499 => AuditOutcome::Refused,
            _ => AuditOutcome::Failed,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: Millis,
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    pub credential: Credential,
    /// The token's id and name (a login session's too).
    pub credential_id: Option<Uuid>,
    pub credential_name: Option<String>,
    /// The client's address (as the server saw it: behind a proxy, the
    /// proxy's unless it is the one that says).
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// The operation, as the API names it (`startWorkspace`), or the CLI
    /// command (`cli.user.add`).
    pub action: String,
    pub method: String,
    /// The route (`/api/workspaces/{id}/start`) or the command line.
    pub route: String,
    /// What the route acts on (`workspace`, `project`, `backup`, `user`,
    /// `token`, `node`, `job`, `type`, `share`), and its id or name.
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// The resource's owner, when it is not the actor.
    pub owner_id: Option<Uuid>,
    /// The request's fields that name resources (never anything else).
    pub details: BTreeMap<String, String>,
    pub outcome: AuditOutcome,
    /// The HTTP status (none for the CLI).
    pub status: Option<u16>,
    /// The error's code (`not_found`, `quota_exceeded`, …).
    pub code: Option<String>,
    /// The replica that recorded it.
    pub replica: Option<Uuid>,
}

/// The fields of a request (JSON body or query) that name resources: the
/// only ones an audit record keeps. Passwords, tokens, certificates and
/// free text never are.
pub const NAMING_FIELDS: &[&str] = &[
    "projectId",
    "workspaceId",
    "backupId",
    "targetProjectId",
    "sourceProjectId",
    "node",
    "email",
    "role",
    "type",
    "name",
    "level",
    "transferTo",
    "dryRun",
    "purge",
    "stopWorkspace",
];

/// Keeps the naming fields of a JSON object (strings, numbers and
/// booleans as text; anything else is left out).
pub fn naming_fields(value: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let serde_json::Value::Object(map) = value {
        for key in NAMING_FIELDS {
            let text = match map.get(*key) {
                Some(serde_json::Value::String(s)) => s.chars().take(200).collect(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                _ => continue,
            };
            out.insert((*key).to_string(), text);
        }
    }
    out
}

super::spelled_enum! {
    /// What kind of thing an audited operation acts on; the audit log's
    /// `resourceType`.
    pub enum ResourceKind("resource kind") {
        Workspace = "workspace",
        Project = "project",
        Type = "type",
        Backup = "backup",
        User = "user",
        Token = "token",
        Node = "node",
        Job = "job",
        GitCredential = "git_credential",
    }
}

impl ResourceKind {
    /// The field of a creation's answer (`data.…`) that names what it made.
    pub fn id_field(self) -> &'static str {
        match self {
            Self::Node | Self::Type | Self::Job => "name",
            _ => "id",
        }
    }
}

/// What the audit log records of an operation, declared with it in the
/// route table (`Op::acts_on`, `Op::creates`, `Op::unaudited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditFacts {
    /// Whether its calls are recorded: it may change state (a method other
    /// than GET and HEAD), and it is not traffic to a workspace's own app.
    pub recorded: bool,
    /// The resource it acts on, and the path parameter that names it.
    pub on: Option<(ResourceKind, &'static str)>,
    /// What it makes when it acts on no named resource: the answer's
    /// `data.id` (or `data.name`) names it. An operation that acts on one
    /// and makes another (a backup of a project) notes the new id as
    /// `created`.
    pub creates: Option<ResourceKind>,
}

/// What `GET /api/audit` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<Uuid>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

/// The oldest record the retention keeps (`audit.retention_days`).
pub fn retention_cutoff(now: Millis, retention_days: u64) -> Millis {
    now.saturating_sub(i64::try_from(retention_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(AuditOutcome::of_status(200), AuditOutcome::Done);
        assert_eq!(AuditOutcome::of_status(201), AuditOutcome::Done);
        assert_eq!(AuditOutcome::of_status(302), AuditOutcome::Done);
        assert_eq!(AuditOutcome::of_status(401), AuditOutcome::Refused);
        assert_eq!(AuditOutcome::of_status(409), AuditOutcome::Refused);
        assert_eq!(AuditOutcome::of_status(500), AuditOutcome::Failed);
        assert_eq!(AuditOutcome::of_status(503), AuditOutcome::Failed);
    }

    #[test]
    fn only_the_fields_that_name_resources_are_kept() {
        let body = json!({
            "email": "a@example.com",
            "password": "secret-password",
            "current": "old-secret",
            "projectId": "p1",
            "key": "-----BEGIN PRIVATE KEY-----",
            "tls": {"key": "k"},
            "dryRun": true,
            "cpus": 2,
            "name": "x".repeat(500),
        });
        let kept = naming_fields(&body);
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            vec!["dryRun", "email", "name", "projectId"]
        );
        assert_eq!(kept["name"].len(), 200);
        assert!(!kept
            .values()
            .any(|v| v.contains("secret") || v.contains("PRIVATE")));
        assert!(naming_fields(&json!(["email"])).is_empty());
    }

    #[test]
    fn retention_counts_whole_days() {
        let now = 100 * 86_400_000;
        assert_eq!(retention_cutoff(now, 30), 70 * 86_400_000);
        assert_eq!(retention_cutoff(now, 1_000), 0 - 900 * 86_400_000);
    }
}
