//! The audit log and quotas on the wire.

use super::*;
use crate::domain::audit::AuditRecord;
use crate::domain::quota::{Setting, Source};
use crate::service::QuotaReport;

/// `GET /api/audit`: filters and the page.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    /// Only what this user did.
    pub user: Option<Uuid>,
    /// Only what was done to this resource (an id, or a node's, job's or
    /// type's name).
    #[schemars(length(max = 256))]
    pub resource: Option<String>,
    /// Only this action (`startWorkspace`, `login`, `cli.user.add`, …).
    #[schemars(length(max = 100))]
    pub action: Option<String>,
    /// From this time on (RFC 3339).
    #[schemars(with = "Option<Timestamp>")]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[schemars(with = "Option<Timestamp>")]
    pub until: Option<String>,
    /// At most this many records, 1 to 500 (default 100).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `page.nextCursor` of the previous page.
    #[schemars(length(max = 200))]
    pub cursor: Option<String>,
}

/// Who acted.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditActorDto {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    /// `session` (a login), `token` (an API token), `cli` (the `berth`
    /// command's admin commands) or `none`.
    #[schemars(with = "crate::domain::audit::Credential")]
    pub credential: String,
    /// The token or session's id, and its name.
    pub credential_id: Option<Uuid>,
    pub credential_name: Option<String>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
}

/// One audit record.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditDto {
    pub id: Uuid,
    #[schemars(with = "Timestamp")]
    pub at: String,
    pub actor: AuditActorDto,
    pub action: String,
    pub method: String,
    pub route: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// The resource's owner, when the actor is someone else.
    pub owner_id: Option<Uuid>,
    /// The request's fields that name resources.
    pub details: std::collections::BTreeMap<String, String>,
    /// `done`, `refused` (4xx) or `failed` (5xx).
    #[schemars(with = "crate::domain::audit::AuditOutcome")]
    pub outcome: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub replica: Option<Uuid>,
}

impl From<&AuditRecord> for AuditDto {
    fn from(r: &AuditRecord) -> Self {
        AuditDto {
            id: r.id,
            at: rfc3339(r.at),
            actor: AuditActorDto {
                user_id: r.actor_id,
                email: r.actor_email.clone(),
                credential: r.credential.as_str().to_string(),
                credential_id: r.credential_id,
                credential_name: r.credential_name.clone(),
                client: r.client.clone(),
                user_agent: r.user_agent.clone(),
            },
            action: r.action.clone(),
            method: r.method.clone(),
            route: r.route.clone(),
            resource_type: r.resource_type.clone(),
            resource_id: r.resource_id.clone(),
            owner_id: r.owner_id,
            details: r.details.clone(),
            outcome: r.outcome.as_str().to_string(),
            status: r.status,
            code: r.code.clone(),
            replica: r.replica,
        }
    }
}

/// One limit: what is used against it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaItemDto {
    pub used: f64,
    /// `null`: no limit.
    pub limit: Option<f64>,
    /// `role` (the role's default) or `user` (set for this user).
    #[schemars(with = "Source")]
    pub source: String,
}

fn item<T: Into<f64> + Copy>(used: f64, limit: (Option<T>, Source)) -> QuotaItemDto {
    QuotaItemDto {
        used,
        limit: limit.0.map(Into::into),
        source: limit.1.as_str().to_string(),
    }
}

fn item_u64(used: u64, limit: (Option<u64>, Source)) -> QuotaItemDto {
    QuotaItemDto {
        used: used as f64,
        limit: limit.0.map(|l| l as f64),
        source: limit.1.as_str().to_string(),
    }
}

/// Storage: the user's project volumes (as last measured) and backups.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageQuotaDto {
    /// Bytes.
    pub used: u64,
    /// Bytes; `null`: no limit.
    pub limit: Option<u64>,
    #[schemars(with = "Source")]
    pub source: String,
    pub volumes: u64,
    pub backups: u64,
    /// The oldest volume measurement counted: storage is approximate
    /// between measurements (the `volume-sizes` job).
    #[schemars(with = "Option<Timestamp>")]
    pub measured_at: Option<String>,
}

/// What every running workspace together reserves, against the site's
/// caps.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteQuotaDto {
    pub cpus: QuotaItemDto,
    pub memory_mb: QuotaItemDto,
}

/// A user's quota: each limit and what is used against it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaDto {
    pub user_id: Uuid,
    pub email: String,
    #[schemars(with = "crate::domain::Role")]
    pub role: String,
    pub workspaces: QuotaItemDto,
    /// Running or starting.
    pub running: QuotaItemDto,
    /// The CPU limits of the running workspaces.
    pub cpus: QuotaItemDto,
    /// Their memory reservations (else limits), MB.
    pub memory_mb: QuotaItemDto,
    pub storage: StorageQuotaDto,
    /// With `quotas.site` set.
    pub site: Option<SiteQuotaDto>,
}

impl From<&QuotaReport> for QuotaDto {
    fn from(r: &QuotaReport) -> Self {
        let (l, u) = (&r.limits, &r.usage);
        QuotaDto {
            user_id: r.user.id,
            email: r.user.email.clone(),
            role: r.user.role.as_str().to_string(),
            workspaces: item_u64(u.workspaces, l.workspaces),
            running: item_u64(u.running, l.running),
            cpus: item((u.cpus * 100.0).round() / 100.0, l.cpus),
            memory_mb: item_u64(u.memory_mb, l.memory_mb),
            storage: StorageQuotaDto {
                used: u.storage_bytes(),
                limit: l.storage_mb.0.map(|m| m.saturating_mul(1024 * 1024)),
                source: l.storage_mb.1.as_str().to_string(),
                volumes: u.volume_bytes,
                backups: u.backup_bytes,
                measured_at: u.measured_at.map(rfc3339),
            },
            site: r.site.map(|s| SiteQuotaDto {
                cpus: QuotaItemDto {
                    used: (s.cpus * 100.0).round() / 100.0,
                    limit: s.cap_cpus,
                    source: Source::Role.as_str().to_string(),
                },
                memory_mb: QuotaItemDto {
                    used: s.memory_mb as f64,
                    limit: s.cap_memory_mb.map(|m| m as f64),
                    source: Source::Role.as_str().to_string(),
                },
            }),
        }
    }
}

/// No limit at all.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy)]
pub enum Unlimited {
    #[serde(rename = "unlimited")]
    Unlimited,
}

/// A limit set for one user: a number, or `"unlimited"`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy)]
#[serde(untagged)]
pub enum LimitSetting<T> {
    Limit(T),
    Word(Unlimited),
}

fn setting<T: Copy>(v: Option<LimitSetting<T>>) -> Setting<T> {
    match v {
        None => Setting::Role,
        Some(LimitSetting::Word(_)) => Setting::Unlimited,
        Some(LimitSetting::Limit(n)) => Setting::Limit(n),
    }
}

/// `PUT /api/users/{id}/quota`: the user's limits, each a number,
/// `"unlimited"`, or left out (`null`) for the role's default. Replaces
/// what was set before.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuotaRequest {
    #[serde(default)]
    pub workspaces: Option<LimitSetting<u64>>,
    #[serde(default)]
    pub running: Option<LimitSetting<u64>>,
    #[serde(default)]
    pub cpus: Option<LimitSetting<f64>>,
    #[serde(default)]
    pub memory_mb: Option<LimitSetting<u64>>,
    #[serde(default)]
    pub storage_mb: Option<LimitSetting<u64>>,
}

impl SetQuotaRequest {
    pub fn overrides(&self) -> crate::domain::quota::Overrides {
        crate::domain::quota::Overrides {
            workspaces: setting(self.workspaces),
            running: setting(self.running),
            cpus: setting(self.cpus),
            memory_mb: setting(self.memory_mb),
            storage_mb: setting(self.storage_mb),
        }
    }
}
