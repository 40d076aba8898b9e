//! The container a workspace runs: its type's image, command and port,
//! the limits and health check in effect, the labels Berth finds it by,
//! the environment it is told where it is served with, and the address its
//! port is published on (loopback on the local node, the node's address on
//! another).

use super::Types;
use crate::domain::{Project, Workspace};
use crate::engine::{ContainerSpec, LABEL_WORKSPACE_ID, LABEL_WORKSPACE_TYPE};
use crate::service::Result;

impl Types {
    /// The container spec of a workspace, from its type and settings.
    pub(in crate::service) async fn container_spec(
        &self,
        ws: &Workspace,
        project: &Project,
    ) -> Result<ContainerSpec> {
        let publish_ip = if ws.node == crate::domain::nodes::LOCAL {
            "127.0.0.1".to_string()
        } else {
            let address = self.core().nodes().address(&ws.node).await?;
            match address.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => "0.0.0.0".to_string(),
            }
        };
        let t = self.workspace_type(&ws.type_name)?;
        let mut labels = self.core().base_labels();
        labels.insert(LABEL_WORKSPACE_ID.into(), ws.id.to_string());
        labels.insert(LABEL_WORKSPACE_TYPE.into(), ws.type_name.clone());
        let mut env: Vec<String> = t.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("WORKSPACE_ID={}", ws.id));
        env.push(format!("WORKSPACE_TYPE={}", ws.type_name));
        env.push(format!("PROJECT_ID={}", project.id));
        // Where the app is served: apps that take a base path use the
        // prefix (`[types.X.proxy] keep_prefix`); BERTH_APP_URL is what a
        // person opens in the configured mode.
        env.push(format!(
            "BERTH_PROXY_PREFIX={}",
            crate::service::app_urls::AppUrls::proxy_prefix(ws.id)
        ));
        env.push(format!(
            "BERTH_APP_URL={}",
            self.core().app_urls().app_url(ws)
        ));
        Ok(ContainerSpec {
            name: ws.container_name(),
            image: t.image.clone(),
            cmd: t.command.clone(),
            env,
            labels,
            limits: self.effective_limits(ws)?,
            health_check: self.effective_health_check(ws)?,
            port: t.port,
            publish_ip,
            volume: Some(project.volume_name.clone()),
        })
    }
}
