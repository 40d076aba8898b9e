//! What the cleanup jobs would do, decided from a snapshot (`docs/original-api.md` §3
//! "Cleanup"). Pure: each planner takes records, what the engine shows, the
//! time and the policy, and returns actions; the executor in `jobs` carries
//! them out. Nothing without Berth's managed label and this installation's
//! instance label is ever planned for.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{Millis, Workspace, WorkspaceStatus};

pub const LABEL_MANAGED: &str = "berth.managed";
pub const LABEL_INSTANCE: &str = "berth.instance";
pub const LABEL_PROJECT_ID: &str = "berth.project.id";
pub const LABEL_WORKSPACE_ID: &str = "berth.workspace.id";
/// Marks short-lived helper containers (archive access for backups).
pub const LABEL_HELPER: &str = "berth.helper";
/// The replica that made a helper: when it is gone, another removes it.
pub const LABEL_REPLICA: &str = "berth.replica";

/// A container as the engine lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSeen {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    /// When the engine created it.
    pub created_at: Millis,
    pub running: bool,
    /// `Some(true)` healthy, `Some(false)` unhealthy or still starting,
    /// `None` without a health check.
    pub healthy: Option<bool>,
    /// Names of the volumes it mounts.
    pub volumes: Vec<String>,
}

/// A volume as the engine lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSeen {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A project record, live or deleted (kept while its volume is retained).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSeen {
    pub id: Uuid,
    pub deleted_at: Option<Millis>,
    /// The volume the project uses now; a restore moves it to a new one and
    /// the old one is kept only for the retention period.
    pub volume_name: String,
}

/// The thresholds of `docs/original-api.md` §3 "Cleanup".
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupPolicy {
    /// This installation's `berth.instance`.
    pub instance: String,
    pub inactive_after_ms: i64,
    pub container_grace_ms: i64,
    pub volume_retention_ms: i64,
}

/// One thing a cleanup job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupAction {
    StopWorkspace {
        workspace_id: Uuid,
        reason: String,
    },
    RemoveContainer {
        container_id: String,
        name: String,
        reason: String,
    },
    RemoveVolume {
        name: String,
        reason: String,
    },
    /// A volume first seen orphaned: its retention clock starts now.
    StartVolumeClock {
        name: String,
    },
    /// A volume with a clock is no longer orphaned.
    ClearVolumeClock {
        name: String,
    },
    MarkRunning {
        workspace_id: Uuid,
        reason: String,
    },
    CleanUpErrored {
        workspace_id: Uuid,
        container_id: Option<String>,
        reason: String,
    },
}

fn ours(labels: &HashMap<String, String>, policy: &CleanupPolicy) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels.get(LABEL_INSTANCE) == Some(&policy.instance)
}

fn hours(ms: i64) -> String {
    let h = ms as f64 / 3_600_000.0;
    if h >= 1.0 {
        format!("{h:.1} h")
    } else {
        format!("{:.0} min", ms as f64 / 60_000.0)
    }
}

/// Running workspaces idle for `inactive_after_ms` or longer are stopped.
/// Idle time counts from the last activity (a start counts), never from an
/// unrelated record update.
pub fn plan_inactive(
    workspaces: &[Workspace],
    containers: &[ContainerSeen],
    now: Millis,
    policy: &CleanupPolicy,
) -> Vec<CleanupAction> {
    let running: HashSet<&str> = containers
        .iter()
        .filter(|c| c.running && ours(&c.labels, policy))
        .filter_map(|c| c.labels.get(LABEL_WORKSPACE_ID).map(String::as_str))
        .collect();
    workspaces
        .iter()
        .filter(|w| w.status == WorkspaceStatus::Running)
        .filter(|w| running.contains(w.id.to_string().as_str()))
        .filter_map(|w| {
            let last = w.last_activity_at.unwrap_or(w.created_at);
            let idle = now - last;
            (idle >= policy.inactive_after_ms).then(|| CleanupAction::StopWorkspace {
                workspace_id: w.id,
                reason: format!(
                    "no activity for {} (limit {})",
                    hours(idle),
                    hours(policy.inactive_after_ms)
                ),
            })
        })
        .collect()
}

/// How long a helper container (never started; archive access) is left
/// alone: longer than any backup or restore runs.
pub const HELPER_GRACE_MS: Millis = 24 * 3_600_000;

/// Managed containers of this installation with no workspace record,
/// older than the grace period, are removed. Running helpers are in use and
/// kept; a container being created is younger than the grace period.
pub fn plan_orphaned_containers(
    workspace_ids: &HashSet<Uuid>,
    containers: &[ContainerSeen],
    now: Millis,
    policy: &CleanupPolicy,
) -> Vec<CleanupAction> {
    containers
        .iter()
        .filter(|c| ours(&c.labels, policy))
        .filter_map(|c| {
            let helper = c.labels.get(LABEL_HELPER).map(String::as_str) == Some("true");
            if helper && c.running {
                return None;
            }
            let has_record = c
                .labels
                .get(LABEL_WORKSPACE_ID)
                .and_then(|w| Uuid::parse_str(w).ok())
                .is_some_and(|w| workspace_ids.contains(&w));
            if has_record {
                return None;
            }
            let age = now - c.created_at;
            // A helper is never started: one that serves a long backup
            // over the archive API looks idle, so it gets a day.
            let grace = if helper {
                policy.container_grace_ms.max(HELPER_GRACE_MS)
            } else {
                policy.container_grace_ms
            };
            if age < grace {
                return None;
            }
            let what = if helper {
                "helper container"
            } else {
                "no workspace record"
            };
            Some(CleanupAction::RemoveContainer {
                container_id: c.id.clone(),
                name: c.name.clone(),
                reason: format!("{what}, {} old", hours(age)),
            })
        })
        .collect()
}

/// Managed volumes whose project is gone (or deleted longer than the
/// retention period ago) and that no container mounts are removed. A volume
/// whose project record is missing altogether starts its clock when first
/// seen (`clocks`: volume name → first seen orphaned).
pub fn plan_orphaned_volumes(
    projects: &[ProjectSeen],
    volumes: &[VolumeSeen],
    containers: &[ContainerSeen],
    clocks: &HashMap<String, Millis>,
    now: Millis,
    policy: &CleanupPolicy,
) -> Vec<CleanupAction> {
    let by_id: HashMap<Uuid, &ProjectSeen> = projects.iter().map(|p| (p.id, p)).collect();
    let mounted: HashSet<&str> = containers
        .iter()
        .flat_map(|c| c.volumes.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for v in volumes.iter().filter(|v| ours(&v.labels, policy)) {
        let project = v
            .labels
            .get(LABEL_PROJECT_ID)
            .and_then(|p| Uuid::parse_str(p).ok())
            .and_then(|p| by_id.get(&p));
        // When did it become an orphan?
        let since = match project {
            Some(p) => match p.deleted_at {
                None if p.volume_name == v.name => {
                    if clocks.contains_key(&v.name) {
                        out.push(CleanupAction::ClearVolumeClock {
                            name: v.name.clone(),
                        });
                    }
                    continue;
                }
                // A live project's previous volume (replaced by a restore).
                None => match clocks.get(&v.name) {
                    Some(first_seen) => *first_seen,
                    None => {
                        out.push(CleanupAction::StartVolumeClock {
                            name: v.name.clone(),
                        });
                        continue;
                    }
                },
                Some(deleted) => deleted,
            },
            None => match clocks.get(&v.name) {
                Some(first_seen) => *first_seen,
                None => {
                    out.push(CleanupAction::StartVolumeClock {
                        name: v.name.clone(),
                    });
                    continue;
                }
            },
        };
        let age = now - since;
        if age < policy.volume_retention_ms || mounted.contains(v.name.as_str()) {
            continue;
        }
        let why = match project {
            Some(p) if p.deleted_at.is_none() => "replaced by a restore",
            Some(_) => "project deleted",
            None => "no project record",
        };
        out.push(CleanupAction::RemoveVolume {
            name: v.name.clone(),
            reason: format!(
                "{why} {} ago (retention {})",
                hours(age),
                hours(policy.volume_retention_ms)
            ),
        });
    }
    out
}

/// Workspaces in `error`: back to `running` when their container runs and
/// is healthy (or has no check); otherwise their container is removed and
/// they are marked `stopped`.
pub fn plan_error_recovery(
    workspaces: &[Workspace],
    containers: &[ContainerSeen],
) -> Vec<CleanupAction> {
    let by_ws: HashMap<&str, &ContainerSeen> = containers
        .iter()
        .filter_map(|c| c.labels.get(LABEL_WORKSPACE_ID).map(|w| (w.as_str(), c)))
        .collect();
    workspaces
        .iter()
        .filter(|w| w.status == WorkspaceStatus::Error)
        .map(|w| {
            let c = by_ws.get(w.id.to_string().as_str());
            match c {
                Some(c) if c.running && c.healthy != Some(false) => CleanupAction::MarkRunning {
                    workspace_id: w.id,
                    reason: "container is running and healthy".into(),
                },
                Some(c) => CleanupAction::CleanUpErrored {
                    workspace_id: w.id,
                    container_id: Some(c.id.clone()),
                    reason: if c.running {
                        "container runs but is not healthy".into()
                    } else {
                        "container is not running".into()
                    },
                },
                None => CleanupAction::CleanUpErrored {
                    workspace_id: w.id,
                    container_id: None,
                    reason: "no container".into(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WorkspaceSettings;

    const H: i64 = 3_600_000;
    const NOW: Millis = 1_000 * H;

    fn policy() -> CleanupPolicy {
        CleanupPolicy {
            instance: "prod".into(),
            inactive_after_ms: 24 * H,
            container_grace_ms: H / 6,
            volume_retention_ms: 7 * 24 * H,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn managed(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut l = labels(&[(LABEL_MANAGED, "true"), (LABEL_INSTANCE, "prod")]);
        l.extend(labels(extra));
        l
    }

    fn ws(status: WorkspaceStatus, last: Option<Millis>) -> Workspace {
        Workspace {
            id: Uuid::new_v4(),
            owner_id: Uuid::new_v4(),
            name: "w".into(),
            description: String::new(),
            type_name: "t".into(),
            project_id: None,
            node: "local".into(),
            is_default: false,
            settings: WorkspaceSettings::default(),
            status,
            status_reason: None,
            container_id: None,
            host_port: None,
            last_activity_at: last,
            created_at: NOW - 100 * H,
            updated_at: NOW,
        }
    }

    fn container_of(w: &Workspace, running: bool) -> ContainerSeen {
        ContainerSeen {
            id: format!("c-{}", w.id),
            name: format!("berth-ws-{}", w.id),
            labels: managed(&[(LABEL_WORKSPACE_ID, &w.id.to_string())]),
            created_at: NOW - 50 * H,
            running,
            healthy: Some(true),
            volumes: vec![],
        }
    }

    // ---- inactive ----

    #[test]
    fn inactive_threshold_is_inclusive_and_counts_from_last_activity() {
        let at_limit = ws(WorkspaceStatus::Running, Some(NOW - 24 * H));
        let just_under = ws(WorkspaceStatus::Running, Some(NOW - 24 * H + 1));
        let way_over = ws(WorkspaceStatus::Running, Some(NOW - 100 * H));
        let all = vec![at_limit.clone(), just_under.clone(), way_over.clone()];
        let cs: Vec<_> = all.iter().map(|w| container_of(w, true)).collect();
        let plan = plan_inactive(&all, &cs, NOW, &policy());
        let ids: Vec<Uuid> = plan
            .iter()
            .map(|a| match a {
                CleanupAction::StopWorkspace { workspace_id, .. } => *workspace_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, vec![at_limit.id, way_over.id]);
        assert!(
            matches!(&plan[0], CleanupAction::StopWorkspace { reason, .. } if reason.contains("24.0 h"))
        );
    }

    #[test]
    fn inactive_without_activity_counts_from_creation() {
        let mut w = ws(WorkspaceStatus::Running, None);
        w.created_at = NOW - 25 * H;
        let c = container_of(&w, true);
        assert_eq!(
            plan_inactive(
                std::slice::from_ref(&w),
                std::slice::from_ref(&c),
                NOW,
                &policy()
            )
            .len(),
            1
        );
        w.created_at = NOW - H;
        assert!(plan_inactive(&[w], &[c], NOW, &policy()).is_empty());
    }

    #[test]
    fn inactive_only_takes_running_records_with_running_containers_of_ours() {
        let stopped = ws(WorkspaceStatus::Stopped, Some(0));
        let errored = ws(WorkspaceStatus::Error, Some(0));
        let no_container = ws(WorkspaceStatus::Running, Some(0));
        let container_down = ws(WorkspaceStatus::Running, Some(0));
        let other_instance = ws(WorkspaceStatus::Running, Some(0));
        let mut foreign = container_of(&other_instance, true);
        foreign
            .labels
            .insert(LABEL_INSTANCE.into(), "staging".into());
        let cs = vec![
            container_of(&stopped, true),
            container_of(&errored, true),
            container_of(&container_down, false),
            foreign,
        ];
        let all = [
            stopped,
            errored,
            no_container,
            container_down,
            other_instance,
        ];
        assert!(plan_inactive(&all, &cs, NOW, &policy()).is_empty());
    }

    // ---- orphaned containers ----

    fn orphan(age: i64, extra: &[(&str, &str)]) -> ContainerSeen {
        ContainerSeen {
            id: format!("id-{age}-{}", extra.len()),
            name: "x".into(),
            labels: managed(extra),
            created_at: NOW - age,
            running: false,
            healthy: None,
            volumes: vec![],
        }
    }

    #[test]
    fn orphaned_containers_respect_the_grace_period_boundary() {
        let grace = policy().container_grace_ms;
        let gone = Uuid::new_v4().to_string();
        let at = orphan(grace, &[(LABEL_WORKSPACE_ID, &gone)]);
        let under = orphan(grace - 1, &[(LABEL_WORKSPACE_ID, &gone)]);
        let plan = plan_orphaned_containers(&HashSet::new(), &[at.clone(), under], NOW, &policy());
        assert_eq!(plan.len(), 1);
        assert!(
            matches!(&plan[0], CleanupAction::RemoveContainer { container_id, .. } if *container_id == at.id)
        );
    }

    #[test]
    fn containers_with_records_or_without_our_labels_are_kept() {
        let known = Uuid::new_v4();
        let ids: HashSet<Uuid> = [known].into();
        let with_record = orphan(10 * H, &[(LABEL_WORKSPACE_ID, &known.to_string())]);
        let mut unmanaged = orphan(10 * H, &[]);
        unmanaged.labels = labels(&[("com.example", "x")]);
        let mut managed_false = orphan(10 * H, &[]);
        managed_false
            .labels
            .insert(LABEL_MANAGED.into(), "false".into());
        let mut other_instance = orphan(10 * H, &[]);
        other_instance
            .labels
            .insert(LABEL_INSTANCE.into(), "staging".into());
        let mut no_instance = orphan(10 * H, &[]);
        no_instance.labels.remove(LABEL_INSTANCE);
        let all = [
            with_record,
            unmanaged,
            managed_false,
            other_instance,
            no_instance,
        ];
        assert!(plan_orphaned_containers(&ids, &all, NOW, &policy()).is_empty());
    }

    #[test]
    fn managed_containers_with_bad_or_missing_workspace_labels_are_orphans() {
        let bad = orphan(H, &[(LABEL_WORKSPACE_ID, "not-a-uuid")]);
        let none = orphan(H, &[]);
        assert_eq!(
            plan_orphaned_containers(&HashSet::new(), &[bad, none], NOW, &policy()).len(),
            2
        );
    }

    #[test]
    fn running_helpers_are_in_use_stopped_old_helpers_go() {
        let mut running = orphan(30 * H, &[(LABEL_HELPER, "true")]);
        running.running = true;
        let idle = orphan(24 * H, &[(LABEL_HELPER, "true")]);
        // Past the workspace grace, within a helper's: a long backup.
        let busy = orphan(10 * H, &[(LABEL_HELPER, "true")]);
        let young = orphan(1, &[(LABEL_HELPER, "true")]);
        let plan = plan_orphaned_containers(
            &HashSet::new(),
            &[running, idle.clone(), busy, young],
            NOW,
            &policy(),
        );
        assert_eq!(plan.len(), 1);
        assert!(
            matches!(&plan[0], CleanupAction::RemoveContainer { container_id, reason, .. }
            if *container_id == idle.id && reason.starts_with("helper"))
        );
    }

    // ---- orphaned volumes ----

    fn vol(name: &str, project: Option<Uuid>) -> VolumeSeen {
        let p = project.map(|p| p.to_string());
        let mut l = managed(&[]);
        if let Some(p) = p {
            l.insert(LABEL_PROJECT_ID.into(), p);
        }
        VolumeSeen {
            name: name.into(),
            labels: l,
        }
    }

    #[test]
    fn a_live_projects_replaced_volume_goes_after_retention() {
        let r = policy().volume_retention_ms;
        let p = ProjectSeen {
            id: Uuid::new_v4(),
            deleted_at: None,
            volume_name: "new".into(),
        };
        let vols = [vol("new", Some(p.id)), vol("old", Some(p.id))];
        let plan = plan_orphaned_volumes(
            std::slice::from_ref(&p),
            &vols,
            &[],
            &HashMap::new(),
            NOW,
            &policy(),
        );
        assert_eq!(
            plan,
            vec![CleanupAction::StartVolumeClock { name: "old".into() }]
        );
        let clocks = HashMap::from([("old".to_string(), NOW - r)]);
        let plan = plan_orphaned_volumes(
            std::slice::from_ref(&p),
            &vols,
            &[],
            &clocks,
            NOW,
            &policy(),
        );
        assert!(
            matches!(&plan[0], CleanupAction::RemoveVolume { name, reason } if name == "old" && reason.starts_with("replaced"))
        );
    }

    #[test]
    fn volumes_of_live_projects_are_kept_and_lose_any_clock() {
        let p = ProjectSeen {
            id: Uuid::new_v4(),
            deleted_at: None,
            volume_name: "v".into(),
        };
        let clocks = HashMap::from([("v".to_string(), 0)]);
        let plan = plan_orphaned_volumes(
            std::slice::from_ref(&p),
            &[vol("v", Some(p.id))],
            &[],
            &clocks,
            NOW,
            &policy(),
        );
        assert_eq!(
            plan,
            vec![CleanupAction::ClearVolumeClock { name: "v".into() }]
        );
        let plan = plan_orphaned_volumes(
            std::slice::from_ref(&p),
            &[vol("v", Some(p.id))],
            &[],
            &HashMap::new(),
            NOW,
            &policy(),
        );
        assert!(plan.is_empty());
    }

    #[test]
    fn deleted_projects_volumes_go_after_retention_inclusive() {
        let r = policy().volume_retention_ms;
        let at = ProjectSeen {
            id: Uuid::new_v4(),
            deleted_at: Some(NOW - r),
            volume_name: "at".into(),
        };
        let under = ProjectSeen {
            id: Uuid::new_v4(),
            deleted_at: Some(NOW - r + 1),
            volume_name: "under".into(),
        };
        let vols = [vol("at", Some(at.id)), vol("under", Some(under.id))];
        let plan = plan_orphaned_volumes(&[at, under], &vols, &[], &HashMap::new(), NOW, &policy());
        assert_eq!(plan.len(), 1);
        assert!(
            matches!(&plan[0], CleanupAction::RemoveVolume { name, reason } if name == "at" && reason.starts_with("project deleted"))
        );
    }

    #[test]
    fn volumes_without_a_project_record_start_a_clock_first() {
        let r = policy().volume_retention_ms;
        let v = vol("lost", Some(Uuid::new_v4()));
        let plan = plan_orphaned_volumes(
            &[],
            std::slice::from_ref(&v),
            &[],
            &HashMap::new(),
            NOW,
            &policy(),
        );
        assert_eq!(
            plan,
            vec![CleanupAction::StartVolumeClock {
                name: "lost".into()
            }]
        );
        let young = HashMap::from([("lost".to_string(), NOW - r + 1)]);
        assert!(
            plan_orphaned_volumes(&[], std::slice::from_ref(&v), &[], &young, NOW, &policy())
                .is_empty()
        );
        let old = HashMap::from([("lost".to_string(), NOW - r)]);
        let plan = plan_orphaned_volumes(&[], std::slice::from_ref(&v), &[], &old, NOW, &policy());
        assert!(
            matches!(&plan[0], CleanupAction::RemoveVolume { reason, .. } if reason.starts_with("no project record"))
        );
        // A managed volume with no project label at all is treated the same.
        let bare = vol("bare", None);
        let plan = plan_orphaned_volumes(&[], &[bare], &[], &HashMap::new(), NOW, &policy());
        assert_eq!(
            plan,
            vec![CleanupAction::StartVolumeClock {
                name: "bare".into()
            }]
        );
    }

    #[test]
    fn mounted_unmanaged_and_foreign_volumes_are_kept() {
        let gone = ProjectSeen {
            id: Uuid::new_v4(),
            deleted_at: Some(0),
            volume_name: "mounted".into(),
        };
        let mounted = vol("mounted", Some(gone.id));
        let user = ContainerSeen {
            id: "u".into(),
            name: "someone-elses".into(),
            labels: labels(&[]),
            created_at: 0,
            running: false,
            healthy: None,
            volumes: vec!["mounted".into()],
        };
        let unmanaged = VolumeSeen {
            name: "theirs".into(),
            labels: labels(&[(LABEL_PROJECT_ID, &gone.id.to_string())]),
        };
        let mut foreign = vol("foreign", Some(gone.id));
        foreign
            .labels
            .insert(LABEL_INSTANCE.into(), "staging".into());
        let plan = plan_orphaned_volumes(
            &[gone],
            &[mounted, unmanaged, foreign],
            &[user],
            &HashMap::new(),
            NOW,
            &policy(),
        );
        assert!(plan.is_empty(), "{plan:?}");
    }

    // ---- error recovery ----

    #[test]
    fn error_workspaces_recover_or_are_cleaned() {
        let healthy = ws(WorkspaceStatus::Error, None);
        let no_check = ws(WorkspaceStatus::Error, None);
        let unhealthy = ws(WorkspaceStatus::Error, None);
        let down = ws(WorkspaceStatus::Error, None);
        let missing = ws(WorkspaceStatus::Error, None);
        let fine = ws(WorkspaceStatus::Running, None);
        let mut c_no_check = container_of(&no_check, true);
        c_no_check.healthy = None;
        let mut c_unhealthy = container_of(&unhealthy, true);
        c_unhealthy.healthy = Some(false);
        let cs = vec![
            container_of(&healthy, true),
            c_no_check,
            c_unhealthy,
            container_of(&down, false),
            container_of(&fine, true),
        ];
        let all = [
            healthy.clone(),
            no_check.clone(),
            unhealthy.clone(),
            down.clone(),
            missing.clone(),
            fine,
        ];
        let plan = plan_error_recovery(&all, &cs);
        assert_eq!(plan.len(), 5);
        assert!(
            matches!(&plan[0], CleanupAction::MarkRunning { workspace_id, .. } if *workspace_id == healthy.id)
        );
        assert!(
            matches!(&plan[1], CleanupAction::MarkRunning { workspace_id, .. } if *workspace_id == no_check.id)
        );
        assert!(
            matches!(&plan[2], CleanupAction::CleanUpErrored { workspace_id, container_id: Some(_), .. } if *workspace_id == unhealthy.id)
        );
        assert!(
            matches!(&plan[3], CleanupAction::CleanUpErrored { workspace_id, container_id: Some(_), reason } if *workspace_id == down.id && reason == "container is not running")
        );
        assert!(
            matches!(&plan[4], CleanupAction::CleanUpErrored { workspace_id, container_id: None, .. } if *workspace_id == missing.id)
        );
    }
}
