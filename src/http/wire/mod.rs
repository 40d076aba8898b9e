//! Wire types: the JSON the API reads and writes, in the original system's
//! camelCase shapes. Only the HTTP layer knows these; domain types never
//! derive a wire format of their own. Here: the envelope and the shared
//! schemas; the types by capability in the submodules (the imports above
//! serve them all). The CLI client reads and writes the same types.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod accounts;
mod apps;
mod audit;
mod backups;
mod jobs;
mod nodes;
mod observe;
mod stats;
mod workspaces;

pub use accounts::*;
pub use apps::*;
pub use audit::*;
pub use backups::*;
pub use jobs::*;
pub use nodes::*;
pub use observe::*;
pub use stats::*;
pub use workspaces::*;

use crate::domain::accounts::Holdings;
use crate::domain::accounts::TokenInfo;
use crate::domain::containers::{ContainerState, HealthProbe, HealthReport};
use crate::domain::{
    Health, HealthCheck, HealthCheckOverride, Project, ResourceLimits, ResourceOverrides, Role,
    User, Workspace, WorkspaceEvent,
};
use crate::service::{
    HealthSummary, HistoryPoint, ResourceUse, StatsView, StatusReport, TypeInfo, WorkspaceStats,
};

/// The success envelope `{"success": true, "data": …, "message"?: …,
/// "page"?: …}`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub data: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Present when a list was asked for by pages (`limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageDto>,
}

/// Where a page of a list stands.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PageDto {
    /// The page size asked for.
    pub limit: u32,
    /// Pass as `cursor` (with the same `limit`) for the next page; absent
    /// on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Items in the whole list, all pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `limit` and `cursor` of a list that pages.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many items, 1 to 500; without it, the whole list (as
    /// before lists paged).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `page.nextCursor` of the previous page (needs `limit`).
    #[schemars(length(max = 200))]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn request(&self) -> Result<crate::domain::page::PageRequest, String> {
        crate::domain::page::PageRequest::parse(self.limit, self.cursor.as_deref())
    }
}

pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        success: true,
        data,
        message: None,
        page: None,
    })
    .into_response()
}

pub fn ok_with<T: Serialize>(data: T, message: impl Into<String>) -> Response {
    Json(Envelope {
        success: true,
        data,
        message: Some(message.into()),
        page: None,
    })
    .into_response()
}

/// A list answer: a page's items, with where it stands when it was cut.
pub fn ok_page<T, U: Serialize>(
    page: crate::domain::page::Page<T>,
    item: impl FnMut(T) -> U,
) -> Response {
    let meta = page.limit.map(|limit| PageDto {
        limit,
        next_cursor: page.next.as_ref().map(|c| c.encode()),
        total: page.total,
    });
    let data: Vec<U> = page.items.into_iter().map(item).collect();
    Json(Envelope {
        success: true,
        data,
        message: None,
        page: meta,
    })
    .into_response()
}

/// Schema of a time on the wire: an RFC 3339 string, as [`rfc3339`] and the
/// engine write them. Used with `#[schemars(with = "Timestamp")]` on the
/// `String` fields that carry times.
pub struct Timestamp;

impl JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Schema of a name as `domain::validate_name` accepts it: 1 to 100
/// characters, not only spaces, no control characters.
pub struct Name;

impl JsonSchema for Name {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
        })
    }
}

/// Schema of a label's value (a node's, a placement's): 1 to 63
/// characters, as `domain::nodes` checks them.
pub struct LabelValue;

impl JsonSchema for LabelValue {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LabelValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "maxLength": 63 })
    }
}

pub use crate::domain::rfc3339;

/// `GET /healthz`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct HealthzDto {
    #[schemars(extend("const" = "ok"))]
    pub status: String,
    pub version: String,
}

/// What a delete answers: the id of what is gone.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct DeletedDto {
    pub id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_schema_lists_every_health_value_and_nothing_else() {
        let schema = serde_json::to_value(schemars::schema_for!(HealthResponseDto)).unwrap();
        let listed: Vec<&str> = schema["properties"]["status"]["enum"]
            .as_array()
            .expect("status has an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = Health::ALL.iter().map(|h| h.as_str()).collect();
        assert_eq!(listed, all);
    }
}
