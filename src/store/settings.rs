//! `workspaces.settings` as stored: a row format of its own, versioned, so
//! that the API's request bodies (`domain::ResourceOverrides`,
//! `domain::HealthCheckOverride`, whose field names are the API's) can
//! change without making rows already written unreadable.
//!
//! Version 1 is what every Berth so far wrote: `{"resources": {cpus,
//! memory, memorySwap, memoryReservation}, "health_check": {enabled,
//! command, interval, timeout, retries, startPeriod}}`, with no version
//! field. It is written with `"v": 1` from now on; a row without `v` is
//! version 1. A row from a newer Berth (a higher `v`) is refused with a
//! message rather than half-read. `tests/store.rs` loads rows as earlier
//! versions wrote them and pins the text this one writes.

use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::domain::{HealthCheckOverride, ResourceOverrides, WorkspaceSettings};

/// The newest row version this Berth reads and the one it writes.
const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct SettingsRow {
    /// Absent in rows written before the format had a version: 1.
    v: Option<u32>,
    resources: ResourcesRow,
    #[serde(skip_serializing_if = "HealthCheckRow::is_empty")]
    health_check: HealthCheckRow,
}

/// MB, as the original system gave them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ResourcesRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<u64>,
    #[serde(rename = "memorySwap", skip_serializing_if = "Option::is_none")]
    memory_swap: Option<u64>,
    #[serde(rename = "memoryReservation", skip_serializing_if = "Option::is_none")]
    memory_reservation: Option<u64>,
}

/// Seconds.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct HealthCheckRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<u32>,
    #[serde(rename = "startPeriod", skip_serializing_if = "Option::is_none")]
    start_period: Option<u64>,
}

impl HealthCheckRow {
    fn is_empty(&self) -> bool {
        self == &HealthCheckRow::default()
    }
}

/// A stored settings row, as the domain's settings.
pub(super) fn decode(text: &str) -> Result<WorkspaceSettings> {
    let row: SettingsRow = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("workspace settings {text:?}: {e}")))?;
    let v = row.v.unwrap_or(1);
    if v > VERSION {
        return Err(StoreError::Corrupt(format!(
            "workspace settings of row format {v}, written by a newer Berth (this one reads up to {VERSION}): run that version, or a newer one"
        )));
    }
    let r = row.resources;
    let h = row.health_check;
    Ok(WorkspaceSettings {
        resources: ResourceOverrides {
            cpus: r.cpus,
            memory: r.memory,
            memory_swap: r.memory_swap,
            memory_reservation: r.memory_reservation,
        },
        health_check: HealthCheckOverride {
            enabled: h.enabled,
            command: h.command,
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
        },
    })
}

/// The domain's settings as the row this version writes.
pub(super) fn encode(s: &WorkspaceSettings) -> String {
    let r = &s.resources;
    let h = &s.health_check;
    let row = SettingsRow {
        v: Some(VERSION),
        resources: ResourcesRow {
            cpus: r.cpus,
            memory: r.memory,
            memory_swap: r.memory_swap,
            memory_reservation: r.memory_reservation,
        },
        health_check: HealthCheckRow {
            enabled: h.enabled,
            command: h.command.clone(),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
        },
    };
    serde_json::to_string(&row).expect("settings serialise")
}
