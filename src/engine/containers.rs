//! Workspace containers: create from a spec, start, stop, restart, remove,
//! inspect into a [`ContainerState`].

use crate::domain::Health;
use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, ContainerUpdateBody, HealthConfig,
    HealthStatusEnum, HostConfig, Mount, MountType, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};

use super::{Engine, EngineError, Result, LABEL_MANAGED};
use crate::domain::cleanup::ContainerSeen;
use crate::domain::containers::{ContainerState, HealthProbe, HealthReport};
use crate::domain::limits::mb_to_bytes;
use crate::domain::{HealthCheck, ResourceLimits};

/// Where a workspace's project volume is mounted.
pub const WORKSPACE_MOUNT: &str = "/workspace";

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Everything needed to create one workspace container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub limits: ResourceLimits,
    /// `None`: the image's own check applies.
    pub health_check: Option<HealthCheck>,
    /// Container port, published on `publish_ip` with an engine-chosen
    /// host port.
    pub port: u16,
    /// Where the port is published: 127.0.0.1 on Berth's own host (only
    /// Berth reaches it); on another node, the address Berth reaches that
    /// node on (or all of its addresses, "0.0.0.0", when that address is a
    /// name): the operator's firewall keeps it to Berth.
    pub publish_ip: String,
    /// Named volume mounted at `/workspace`.
    pub volume: Option<String>,
}

impl ContainerSpec {
    fn to_body(&self) -> ContainerCreateBody {
        let port_key = format!("{}/tcp", self.port);
        let mut port_bindings = HashMap::new();
        port_bindings.insert(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some(self.publish_ip.clone()),
                // Empty: the engine picks a free port.
                host_port: Some(String::new()),
            }]),
        );
        let mounts = self.volume.as_ref().map(|v| {
            vec![Mount {
                target: Some(WORKSPACE_MOUNT.into()),
                source: Some(v.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            }]
        });
        let l = &self.limits;
        let host_config = HostConfig {
            nano_cpus: Some(l.nano_cpus()),
            memory: Some(mb_to_bytes(l.memory_mb)),
            memory_swap: Some(mb_to_bytes(l.effective_swap_mb())),
            memory_reservation: l.memory_reservation_mb.map(mb_to_bytes),
            port_bindings: Some(port_bindings),
            mounts,
            // Reaps zombies that editors' language servers leave behind.
            init: Some(true),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            env: Some(self.env.clone()),
            labels: Some(self.labels.clone()),
            exposed_ports: Some(vec![port_key]),
            healthcheck: self.health_check.as_ref().map(health_config),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

fn health_config(h: &HealthCheck) -> HealthConfig {
    if h.disabled {
        return HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
    }
    let secs = |s: u64| Some((s as i64).saturating_mul(NANOS_PER_SEC));
    HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), h.command.clone()]),
        interval: secs(h.interval_s),
        timeout: secs(h.timeout_s),
        retries: Some(i64::from(h.retries)),
        start_period: secs(h.start_period_s),
        ..Default::default()
    }
}

impl Engine {
    /// Creates (does not start) a container; returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let r = self
            .docker
            .create_container(Some(opts), spec.to_body())
            .await?;
        Ok(r.id)
    }

    /// Starts a container; already running is fine.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        match self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            // 304 Not Modified: already started.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops a container, killing it after `timeout_s`; already stopped is fine.
    pub async fn stop_container(&self, id: &str, timeout_s: u32) -> Result<()> {
        let opts = StopContainerOptionsBuilder::new()
            .t(i32::try_from(timeout_s).unwrap_or(i32::MAX))
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn restart_container(&self, id: &str, timeout_s: u32) -> Result<()> {
        let opts = RestartContainerOptionsBuilder::new()
            .t(i32::try_from(timeout_s).unwrap_or(i32::MAX))
            .build();
        self.docker.restart_container(id, Some(opts)).await?;
        Ok(())
    }

    pub async fn pause_container(&self, id: &str) -> Result<()> {
        self.docker.pause_container(id).await?;
        Ok(())
    }

    pub async fn unpause_container(&self, id: &str) -> Result<()> {
        self.docker.unpause_container(id).await?;
        Ok(())
    }

    /// Removes a container (forcefully, running or not); already gone is fine.
    /// Never removes its volumes.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(()),
                // Removal already in progress: the outcome is the same.
                EngineError::Conflict(m) if m.contains("already in progress") => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The container's state, or `None` when it does not exist.
    pub async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>> {
        self.inspects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = match self
            .docker
            .inspect_container(id_or_name, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return match EngineError::from(e) {
                    EngineError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let state = r.state.unwrap_or_default();
        let health = state.health.and_then(|h| {
            let status = match h.status {
                Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
                Some(HealthStatusEnum::STARTING) => Health::Starting,
                _ => return None,
            };
            Some(HealthReport {
                status,
                failing_streak: h.failing_streak.unwrap_or(0),
                log: h
                    .log
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| HealthProbe {
                        exit_code: p.exit_code.unwrap_or(-1),
                        output: p.output.unwrap_or_default(),
                        start: p.start.unwrap_or_default(),
                        end: p.end.unwrap_or_default(),
                    })
                    .collect(),
            })
        });
        let config = r.config.unwrap_or_default();
        let host_port = r.network_settings.and_then(|n| n.ports).and_then(|ports| {
            ports.into_values().flatten().flatten().find_map(|b| {
                b.host_port
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p != 0)
            })
        });
        let opt = |s: Option<String>| s.filter(|s| !s.is_empty() && !s.starts_with("0001-"));
        Ok(Some(ContainerState {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            exit_code: state.exit_code.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            error: opt(state.error),
            started_at: opt(state.started_at),
            finished_at: opt(state.finished_at),
            restart_count: r.restart_count.unwrap_or(0),
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0),
            health,
            host_port,
            labels: config.labels.unwrap_or_default(),
        }))
    }

    /// Changes a container's CPU and memory limits in place (the engine's
    /// update API): no restart, same container.
    pub async fn update_limits(&self, id: &str, l: &ResourceLimits) -> Result<()> {
        let body = ContainerUpdateBody {
            nano_cpus: Some(l.nano_cpus()),
            memory: Some(mb_to_bytes(l.memory_mb)),
            memory_swap: Some(mb_to_bytes(l.effective_swap_mb())),
            // 0 clears a reservation set before.
            memory_reservation: Some(l.memory_reservation_mb.map(mb_to_bytes).unwrap_or(0)),
            ..Default::default()
        };
        self.docker.update_container(id, body).await?;
        Ok(())
    }

    /// Every container, running or not, that carries Berth's managed label
    /// or mounts a managed volume: what the cleanup planners look at.
    pub async fn list_containers_seen(&self) -> Result<Vec<ContainerSeen>> {
        let opts = ListContainersOptionsBuilder::new().all(true).build();
        let list = self.docker.list_containers(Some(opts)).await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let status = c.status.unwrap_or_default();
                let healthy = if status.contains("(healthy)") {
                    Some(true)
                } else if status.contains("(unhealthy)") || status.contains("(health: starting)") {
                    Some(false)
                } else {
                    None
                };
                ContainerSeen {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    labels: c.labels.unwrap_or_default(),
                    created_at: c.created.unwrap_or(0).saturating_mul(1000),
                    running: matches!(c.state, Some(ContainerSummaryStateEnum::RUNNING)),
                    healthy,
                    volumes: c
                        .mounts
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|m| m.name)
                        .collect(),
                }
            })
            .collect())
    }

    /// Running containers of this installation's workspaces, as
    /// (container id, workspace id label).
    pub async fn running_workspace_containers(
        &self,
        instance: &str,
    ) -> Result<Vec<(String, String, bool)>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{}={instance}", super::LABEL_INSTANCE),
            ],
        );
        filters.insert("status", vec!["running".to_string()]);
        let opts = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(opts)).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                // The list's status text says "(unhealthy)" while the health
                // check fails; no inspect per container needed.
                let unhealthy = c
                    .status
                    .as_deref()
                    .is_some_and(|s| s.contains("(unhealthy)"));
                let ws = c.labels?.get(super::LABEL_WORKSPACE_ID)?.clone();
                Some((c.id?, ws, unhealthy))
            })
            .collect())
    }

    /// Ids and names of the containers carrying Berth's managed label and
    /// every `extra` label (`key=value`), running or not.
    pub async fn list_managed_containers(&self, extra: &[String]) -> Result<Vec<(String, String)>> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        labels.extend(extra.iter().cloned());
        let mut filters = HashMap::new();
        filters.insert("label", labels);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(opts)).await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                (c.id.unwrap_or_default(), name)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "berth-ws-x".into(),
            image: "img".into(),
            cmd: vec![],
            env: vec!["A=1".into()],
            labels: HashMap::new(),
            limits: ResourceLimits {
                cpus: 1.5,
                memory_mb: 256,
                memory_swap_mb: Some(512),
                memory_reservation_mb: Some(64),
            },
            health_check: Some(HealthCheck::http_default(8080)),
            port: 8080,
            publish_ip: "127.0.0.1".into(),
            volume: Some("vol".into()),
        }
    }

    #[test]
    fn limits_and_health_become_engine_units() {
        let body = spec().to_body();
        let hc = body.host_config.unwrap();
        assert_eq!(hc.nano_cpus, Some(1_500_000_000));
        assert_eq!(hc.memory, Some(256 * 1024 * 1024));
        assert_eq!(hc.memory_swap, Some(512 * 1024 * 1024));
        assert_eq!(hc.memory_reservation, Some(64 * 1024 * 1024));
        let h = body.healthcheck.unwrap();
        assert_eq!(h.interval, Some(30 * NANOS_PER_SEC));
        assert_eq!(h.timeout, Some(10 * NANOS_PER_SEC));
        assert_eq!(h.start_period, Some(60 * NANOS_PER_SEC));
        assert_eq!(h.retries, Some(3));
        assert_eq!(h.test.unwrap()[0], "CMD-SHELL");
        assert!(body.cmd.is_none(), "empty command keeps the image's");
    }

    #[test]
    fn port_is_published_on_loopback_only() {
        let hc = spec().to_body().host_config.unwrap();
        let b = &hc.port_bindings.unwrap()["8080/tcp"];
        let b = &b.as_ref().unwrap()[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn disabled_health_check_is_none() {
        let mut s = spec();
        s.health_check.as_mut().unwrap().disabled = true;
        assert_eq!(s.to_body().healthcheck.unwrap().test.unwrap(), vec!["NONE"]);
        s.health_check = None;
        assert!(s.to_body().healthcheck.is_none());
    }

    #[test]
    fn no_swap_means_swap_equals_memory() {
        let mut s = spec();
        s.limits.memory_swap_mb = None;
        let hc = s.to_body().host_config.unwrap();
        assert_eq!(hc.memory_swap, hc.memory);
    }
}
