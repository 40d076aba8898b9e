//! Where workspace apps are served, from the configuration: Berth's
//! public origin and, with `proxy.app_domain`, each app's own origin
//! (`<name>--<short id>.<app domain>`), the prefixes of path mode, and
//! reading an app host back. Pure; below every service (a container's
//! `BERTH_APP_URL` comes from it).

use uuid::Uuid;

use crate::config::Config;
use crate::domain::apps::{app_label, parse_app_host, AppHost};
use crate::domain::Workspace;

/// Where apps are served, from the config: Berth's public origin and, in
/// subdomain mode, the app domain (app origins take the public URL's scheme
/// and port).
#[derive(Debug, Clone)]
pub struct AppUrls {
    public: url::Url,
    app_domain: String,
}

impl AppUrls {
    pub fn new(config: &Config) -> AppUrls {
        AppUrls {
            // Checked when the config was loaded.
            public: config
                .public_origin()
                .unwrap_or_else(|_| url::Url::parse("http://127.0.0.1:7780").expect("valid URL")),
            app_domain: config.proxy.app_domain.clone(),
        }
    }

    /// Whether apps have origins of their own.
    pub fn subdomain(&self) -> bool {
        !self.app_domain.is_empty()
    }

    /// Berth's origin, e.g. `http://127.0.0.1:7780`.
    pub fn public_base(&self) -> String {
        self.public.origin().ascii_serialization()
    }

    pub fn scheme(&self) -> &str {
        self.public.scheme()
    }

    /// Whether app cookies get `Secure` (app origins behind TLS).
    pub fn secure(&self) -> bool {
        self.public.scheme() == "https"
    }

    fn port_suffix(&self) -> String {
        self.public
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default()
    }

    /// Path mode's prefix of a workspace's app.
    pub fn proxy_prefix(id: Uuid) -> String {
        format!("/api/workspaces/{id}/proxy/")
    }

    /// Path mode's prefix of another port of a workspace.
    pub fn port_prefix(id: Uuid, port: u16) -> String {
        format!("/api/workspaces/{id}/ports/{port}/")
    }

    /// The origin of a workspace's app (`port`: another port than the
    /// type's), in subdomain mode.
    pub fn app_origin(&self, ws: &Workspace, port: Option<u16>) -> Option<String> {
        self.subdomain().then(|| {
            format!(
                "{}://{}.{}{}",
                self.scheme(),
                app_label(&ws.name, ws.id, port),
                self.app_domain,
                self.port_suffix()
            )
        })
    }

    /// The URL a person opens for a workspace's app in the configured mode.
    pub fn app_url(&self, ws: &Workspace) -> String {
        match self.app_origin(ws, None) {
            Some(o) => format!("{o}/"),
            None => format!("{}{}", self.public_base(), Self::proxy_prefix(ws.id)),
        }
    }

    /// The URL of another port of a workspace in the configured mode.
    pub fn port_url(&self, ws: &Workspace, port: u16) -> String {
        match self.app_origin(ws, Some(port)) {
            Some(o) => format!("{o}/"),
            None => format!("{}{}", self.public_base(), Self::port_prefix(ws.id, port)),
        }
    }

    /// The app a request's `Host` names, if it names one.
    pub fn parse_host(&self, host: &str) -> Option<AppHost> {
        parse_app_host(host, &self.app_domain)
    }

    /// Whether `url` is on an app origin of this installation: the same
    /// scheme and port as Berth's, a host on the app domain.
    pub fn parse_app_url(&self, url: &url::Url) -> Option<AppHost> {
        if url.scheme() != self.scheme() || url.port() != self.public.port() {
            return None;
        }
        self.parse_host(url.host_str()?)
    }
}
