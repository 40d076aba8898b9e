//! Workspace apps (ports, shares, the login handoff) and image pulls on
//! the wire.

use super::*;

/// `GET /api/apps/auth`: where to go once logged in.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandoffQuery {
    /// The app URL the browser asked for (on an app origin of this Berth).
    #[schemars(length(max = 2048))]
    pub redirect: String,
}

/// A TCP port a workspace listens on.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortDto {
    pub port: u16,
    /// The address it listens on inside the workspace (`0.0.0.0`, `::`,
    /// `127.0.0.1`…); any of them can be opened.
    pub address: String,
    /// The type's own port (the workspace's app).
    pub main: bool,
    /// Who may open it on its app origin besides the owner.
    pub share: crate::domain::apps::ShareLevel,
    /// Where it opens: its own origin with `proxy.app_domain`, else its path.
    pub url: String,
}

impl From<&crate::service::apps::PortInfo> for PortDto {
    fn from(p: &crate::service::apps::PortInfo) -> Self {
        PortDto {
            port: p.listener.port,
            address: p.listener.address.to_string(),
            main: p.main,
            share: p.share,
            url: p.url.clone(),
        }
    }
}

/// `PUT /api/workspaces/{id}/shares/{port}`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareRequest {
    /// `authenticated` (anyone logged in), `public` (anyone; only where the
    /// operator allows it) or `owner` (ends the share).
    pub level: crate::domain::apps::ShareLevel,
}

/// A port's share.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareDto {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub port: u16,
    pub level: crate::domain::apps::ShareLevel,
    pub url: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

/// `DELETE /api/workspaces/{id}/shares/{port}`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsharedDto {
    pub workspace_id: Uuid,
    pub port: u16,
}

/// A type image's pull, as far as it got.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullDto {
    pub image: String,
    /// `pulling`, `done` or `failed`.
    #[schemars(extend("enum" = ["pulling", "done", "failed"]))]
    pub state: String,
    /// The engine's last word about the image as a whole.
    pub status: String,
    pub layers: Vec<LayerDto>,
    /// Bytes downloaded so far, of the layers' known total.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub error: Option<String>,
    #[schemars(with = "Timestamp")]
    pub started_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub finished_at: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerDto {
    pub id: String,
    pub status: String,
    pub current: u64,
    pub total: Option<u64>,
    pub done: bool,
}

impl From<&crate::domain::images::PullProgress> for PullDto {
    fn from(p: &crate::domain::images::PullProgress) -> Self {
        let (done, total) = p.bytes();
        PullDto {
            image: p.image.clone(),
            state: p.state.as_str().to_string(),
            status: p.status.clone(),
            layers: p
                .layers
                .iter()
                .map(|(id, l)| LayerDto {
                    id: id.clone(),
                    status: l.status.clone(),
                    current: l.current,
                    total: l.total,
                    done: l.done,
                })
                .collect(),
            bytes_done: done,
            bytes_total: total,
            error: p.error.clone(),
            started_at: rfc3339(p.started_at),
            finished_at: p.finished_at.map(rfc3339),
        }
    }
}
