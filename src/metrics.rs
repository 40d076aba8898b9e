//! Prometheus metrics: one process-wide recorder (the `metrics` facade),
//! rendered at `GET /metrics`. Counters and histograms are recorded where
//! things happen; gauges that describe the fleet (workspaces by status and
//! type) are computed from the store at scrape time, so they are never stale.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .expect("buckets are not empty")
                // Per-workspace gauges of workspaces that stopped go away.
                .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(120)))
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist in tests; the handle still renders ours.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
                start_at_zero();
            }
            handle
        })
        .clone()
}

/// Every family's `# HELP` line (`promtool check metrics` wants one each).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("berth_workspaces", "Workspaces by type and status.");
    describe_gauge!(
        "berth_replicas",
        "The Berth processes on this database by state (live, stopped, gone), as this replica sees them."
    );
    describe_gauge!(
        "berth_replica_up",
        "1 while a replica's heartbeat is recent, else 0."
    );
    describe_counter!(
        "berth_replicas_reaped_total",
        "Gone replicas whose unfinished work this replica took care of."
    );
    describe_counter!(
        "berth_lock_lost_total",
        "Shared locks held here that another replica took while this one's database session was lost (should stay 0)."
    );
    describe_gauge!(
        "berth_quota_used",
        "What a user uses of a quota resource (workspaces, running, cpus, memory_bytes, storage_bytes)."
    );
    describe_gauge!(
        "berth_quota_limit",
        "A user's limit of a quota resource (absent: no limit)."
    );
    describe_counter!(
        "berth_capacity_refusals_total",
        "Starts and resizes refused because their node had no room for them."
    );
    describe_counter!(
        "berth_quota_refusals_total",
        "Actions refused by a quota (scope user) or the site's caps (scope site)."
    );
    describe_counter!(
        "berth_audit_failures_total",
        "Audit records that could not be written (to the database or the audit.log file)."
    );
    describe_gauge!(
        "berth_node_up",
        "1 while a node's engine answers its heartbeat, else 0."
    );
    describe_gauge!(
        "berth_node_schedulable",
        "1 while a node takes new workspaces (ready: reachable, not cordoned or draining)."
    );
    describe_gauge!("berth_node_cpus", "CPUs of a node's engine.");
    describe_gauge!(
        "berth_node_memory_bytes",
        Unit::Bytes,
        "Memory of a node's engine."
    );
    describe_gauge!(
        "berth_node_allocated_cpus",
        "CPU limits of the workspaces running on a node."
    );
    describe_gauge!(
        "berth_node_allocated_memory_bytes",
        Unit::Bytes,
        "Memory reservations (else limits) of the workspaces running on a node."
    );
    describe_gauge!(
        "berth_node_running_workspaces",
        "Workspaces with a running container on a node."
    );
    describe_gauge!(
        "berth_workspace_cpu_percent",
        "CPU use of a running workspace, percent of one core, sampled every stats.interval_s."
    );
    describe_gauge!(
        "berth_workspace_memory_bytes",
        Unit::Bytes,
        "Memory use of a running workspace (without the page cache it could drop)."
    );
    describe_gauge!(
        "berth_workspace_unhealthy",
        "1 while a running workspace's health check fails, else 0."
    );
    describe_counter!(
        "berth_recovery_restarts_total",
        "Restarts of failed workspaces by recovery, by what failed."
    );
    describe_counter!(
        "berth_recovery_gave_up_total",
        "Workspaces recovery put in error after their restart budget, by what failed."
    );
    describe_counter!(
        "berth_oom_kills_total",
        "Workspace processes killed for memory."
    );
    describe_counter!("berth_backups_total", "Backups by outcome.");
    describe_histogram!(
        "berth_backup_duration_seconds",
        Unit::Seconds,
        "How long a backup took."
    );
    describe_gauge!(
        "berth_backup_last_size_bytes",
        Unit::Bytes,
        "Size of a project's newest complete backup."
    );
    describe_gauge!(
        "berth_backup_last_success_timestamp_seconds",
        Unit::Seconds,
        "When a project's newest complete backup finished (Unix time)."
    );
    describe_counter!(
        "berth_backup_remote_total",
        "Remote copies of backups by outcome: stored, failed, fetched, delete_failed."
    );
    describe_histogram!(
        "berth_backup_remote_duration_seconds",
        Unit::Seconds,
        "How long sending a backup's remote copy took."
    );
    describe_counter!(
        "berth_cleanup_actions_total",
        "What the cleanup jobs did, by job, action and outcome."
    );
    describe_counter!(
        "berth_job_runs_total",
        "Runs of scheduled jobs by job and outcome."
    );
    describe_histogram!(
        "berth_job_duration_seconds",
        Unit::Seconds,
        "How long a job run took."
    );
    describe_counter!(
        "berth_http_requests_total",
        "HTTP requests by route, method and status."
    );
    describe_histogram!(
        "berth_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route."
    );
    describe_counter!(
        "berth_engine_errors_total",
        "Failed Docker engine calls by kind."
    );
    describe_counter!("berth_login_failures_total", "Failed logins.");
    describe_counter!(
        "berth_loop_failures_total",
        "Failed rounds of a background loop (watcher, sampler), by loop and kind of error."
    );
    describe_counter!("berth_image_pulls_total", "Type image pulls by outcome.");
    describe_counter!(
        "berth_login_throttled_total",
        "Logins refused while an account or address was locked, by which."
    );
}

/// Counts one failed round of a background loop.
pub fn loop_failed(name: &'static str, kind: &'static str) {
    metrics::counter!("berth_loop_failures_total", "loop" => name, "kind" => kind).increment(1);
}

/// Counters whose labels are known from the start are registered at 0, so
/// `rate()` and `increase()` see them from the first scrape (a counter born
/// at 1 hides its first increase).
fn start_at_zero() {
    use metrics::counter;
    for outcome in ["complete", "failed"] {
        counter!("berth_backups_total", "outcome" => outcome).absolute(0);
    }
    for outcome in ["stored", "failed", "fetched", "delete_failed"] {
        counter!("berth_backup_remote_total", "outcome" => outcome).absolute(0);
    }
    for reason in ["unhealthy", "oom", "exited"] {
        counter!("berth_recovery_restarts_total", "reason" => reason).absolute(0);
        counter!("berth_recovery_gave_up_total", "reason" => reason).absolute(0);
    }
    counter!("berth_oom_kills_total").absolute(0);
    counter!("berth_replicas_reaped_total").absolute(0);
    counter!("berth_lock_lost_total").absolute(0);
    counter!("berth_audit_failures_total").absolute(0);
    for scope in ["user", "site"] {
        counter!("berth_quota_refusals_total", "scope" => scope).absolute(0);
    }
    for job in crate::domain::jobs::JobName::ALL {
        for outcome in [
            crate::domain::jobs::JobOutcome::Ok,
            crate::domain::jobs::JobOutcome::Failed,
            crate::domain::jobs::JobOutcome::Skipped,
        ] {
            counter!("berth_job_runs_total", "job" => job.as_str(), "outcome" => outcome.as_str())
                .absolute(0);
        }
    }
    for kind in ["not_found", "conflict", "unavailable", "rejected", "failed"] {
        counter!("berth_engine_errors_total", "kind" => kind).absolute(0);
    }
    counter!("berth_login_failures_total").absolute(0);
    for (lp, kind) in [
        ("watcher", "engine_unavailable"),
        ("watcher", "engine"),
        ("watcher", "store"),
        ("sampler", "engine_unavailable"),
        ("sampler", "engine"),
        ("heartbeat", "store"),
    ] {
        counter!("berth_loop_failures_total", "loop" => lp, "kind" => kind).absolute(0);
    }
    for outcome in ["done", "failed"] {
        counter!("berth_image_pulls_total", "outcome" => outcome).absolute(0);
    }
    for by in ["account", "address"] {
        counter!("berth_login_throttled_total", "by" => by).absolute(0);
    }
}
