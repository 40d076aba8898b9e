//! Workspace apps: their URLs in each mode, the login handoff that gives a
//! browser an app cookie for one app origin, who may open which port
//! (`domain::apps` decides), shares, and the ports a workspace listens on.
//! The HTTP side (`http::routes::apps`, `http::routes::proxy`) moves bytes.

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use super::app_urls::AppUrls;
use super::{Berth, Core, Observe, Result, ServiceError, Types};

pub mod proxy;
use crate::domain::apps::AppShare;
use crate::domain::apps::{app_access, short_id, slug, AppAccess, AppHost, Listener, ShareLevel};
use crate::domain::{now_millis, Millis, User, Workspace};
use crate::store::AppCode;

/// How long a handoff code may wait to be exchanged: one redirect's time.
const CODE_TTL_MS: Millis = 60_000;
/// Prefix of app-session tokens (they are no API tokens: another prefix).
const APP_TOKEN_PREFIX: &str = "berthapp_";

/// A request's app: the workspace, the port inside it, and how to forward.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub ws: Workspace,
    pub port: u16,
    /// The type's own port (published), rather than another one (relayed).
    pub main: bool,
    /// The type keeps its path prefix (`[types.X.proxy] keep_prefix`).
    pub keep_prefix: bool,
    /// The host named the workspace by its current name (after a rename,
    /// the old label still finds it, and browsers are sent to the new one).
    pub canonical: bool,
}

/// A port a workspace listens on, as its owner sees it.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub listener: Listener,
    pub main: bool,
    pub share: ShareLevel,
    /// Where it opens: its app origin in subdomain mode, else the path.
    pub url: String,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Workspace apps and the proxy's side of them (see the module's doc).
/// Above the workspaces: opening a stopped workspace's app starts it.
#[derive(Clone)]
pub struct Apps {
    inner: Arc<Inner>,
}

struct Inner {
    berth: Berth,
    /// When proxy traffic last recorded activity, per workspace.
    proxy_touched: Mutex<HashMap<Uuid, std::time::Instant>>,
}

impl Apps {
    pub fn new(berth: Berth) -> Apps {
        Apps {
            inner: Arc::new(Inner {
                berth,
                proxy_touched: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The workspaces whose apps these are.
    pub fn berth(&self) -> &Berth {
        &self.inner.berth
    }

    fn core(&self) -> &Core {
        self.inner.berth.core()
    }

    fn observe(&self) -> &Observe {
        self.inner.berth.observe()
    }

    fn types(&self) -> &Types {
        self.inner.berth.types()
    }
}

impl Apps {
    /// The app a host names: the workspace whose id starts with the label's
    /// short id and whose name gives the label's slug; after a rename, the
    /// one workspace with that short id (not `canonical` then).
    pub async fn resolve_app(&self, host: &AppHost) -> Result<AppTarget> {
        let not_found = || ServiceError::NotFound("no such workspace app".into());
        let mut found: Vec<Workspace> = self
            .core()
            .store()
            .workspaces_by_short_id(&host.short_id)
            .await?
            .into_iter()
            .filter(|w| short_id(w.id) == host.short_id)
            .collect();
        let (ws, canonical) = match found.iter().position(|w| slug(&w.name) == host.slug) {
            Some(i) => (found.swap_remove(i), true),
            None if found.len() == 1 => (found.remove(0), false),
            None => return Err(not_found()),
        };
        let mut target = self.app_target(ws, host.port)?;
        target.canonical = canonical;
        Ok(target)
    }

    /// The target for `port` of `ws` (`None`: the type's port).
    pub fn app_target(&self, ws: Workspace, port: Option<u16>) -> Result<AppTarget> {
        let t = self.types().workspace_type(&ws.type_name)?;
        let port = port.unwrap_or(t.port);
        Ok(AppTarget {
            main: port == t.port,
            keep_prefix: port == t.port && t.proxy.keep_prefix,
            port,
            ws,
            canonical: true,
        })
    }

    /// A port's share level (`owner` when it has none).
    pub async fn share_level(&self, workspace_id: Uuid, port: u16) -> Result<ShareLevel> {
        Ok(self
            .core()
            .store()
            .share(workspace_id, port)
            .await?
            .map(|s| s.level)
            .unwrap_or_default())
    }

    /// Who may open `target` on its app origin.
    pub async fn app_access(&self, viewer: Option<&User>, target: &AppTarget) -> Result<AppAccess> {
        let share = self.share_level(target.ws.id, target.port).await?;
        Ok(app_access(
            viewer,
            target.ws.owner_id,
            share,
            self.core().config().proxy.allow_public_shares,
        ))
    }

    /// Issues a single-use code that the app origin exchanges for an app
    /// cookie, for a user who may open the app. `parent` is the token the
    /// user is logged in with: the app session ends with it.
    pub async fn issue_app_code(
        &self,
        user: &User,
        parent: Uuid,
        target: &AppTarget,
    ) -> Result<String> {
        if self.app_access(Some(user), target).await? != AppAccess::Allow {
            return Err(ServiceError::NotFound("no such workspace app".into()));
        }
        let code = random_secret("");
        let now = now_millis();
        self.core()
            .store()
            .insert_app_code(
                &hash(&code),
                user.id,
                parent,
                target.ws.id,
                target.port,
                now,
                now + CODE_TTL_MS,
            )
            .await?;
        Ok(code)
    }

    /// Exchanges a handoff code, on the app origin it was issued for, for
    /// an app session: the token to set as the app cookie and when it
    /// expires (with the Berth session it came from). A code works once.
    pub async fn redeem_app_code(
        &self,
        code: &str,
        target: &AppTarget,
    ) -> Result<(String, Millis)> {
        let refused = || {
            ServiceError::Refused(
                "this sign-in link was already used or has expired; open the app again".into(),
            )
        };
        let taken: AppCode = self
            .core()
            .store()
            .take_app_code(&hash(code))
            .await?
            .ok_or_else(refused)?;
        let now = now_millis();
        if taken.expires_at <= now
            || taken.workspace_id != target.ws.id
            || taken.port != target.port
        {
            return Err(refused());
        }
        let user = self
            .core()
            .store()
            .user(taken.user_id)
            .await?
            .ok_or_else(refused)?;
        if self.app_access(Some(&user), target).await? != AppAccess::Allow {
            return Err(refused());
        }
        // The session lasts as long as the login it came from.
        let parent_expiry = self
            .core()
            .store()
            .tokens_of(user.id, now)
            .await?
            .into_iter()
            .find(|t| t.id == taken.parent_token_id)
            .ok_or_else(refused)?
            .expires_at;
        let ttl_ms = i64::try_from(self.core().config().auth.session_ttl_h)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let expires_at = parent_expiry
            .unwrap_or(i64::MAX)
            .min(now.saturating_add(ttl_ms));
        let token = random_secret(APP_TOKEN_PREFIX);
        self.core()
            .store()
            .insert_app_session(
                &hash(&token),
                &AppCode {
                    expires_at,
                    ..taken
                },
                now,
            )
            .await?;
        Ok((token, expires_at))
    }

    /// The user an app cookie authenticates on `target`'s origin (an app
    /// session is valid for the one workspace port it was made for).
    pub async fn app_user(&self, token: &str, target: &AppTarget) -> Result<Option<User>> {
        if !token.starts_with(APP_TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self
            .core()
            .store()
            .app_session_user(&hash(token), target.ws.id, target.port, now_millis())
            .await?)
    }

    /// The ports a workspace listens on, with their shares and URLs
    /// (running workspaces only; a stopped one listens on nothing).
    pub async fn workspace_ports(&self, user: &User, id: Uuid) -> Result<Vec<PortInfo>> {
        let ws = self.core().workspace(user, id).await?;
        let t = self.types().workspace_type(&ws.type_name)?;
        let engine = self.core().engine_of(&ws).await?;
        let Some(c) = self
            .observe()
            .container_on(&ws.node, &ws.container_name())
            .await?
            .filter(|c| c.running)
        else {
            return Ok(Vec::new());
        };
        let listeners = engine.listening_ports(&c.id, c.pid).await?;
        let shares = self.core().store().shares(Some(id)).await?;
        Ok(listeners
            .into_iter()
            .map(|l| {
                let main = l.port == t.port;
                PortInfo {
                    listener: l,
                    main,
                    share: shares
                        .iter()
                        .find(|s| s.port == l.port)
                        .map(|s| s.level)
                        .unwrap_or_default(),
                    url: if main {
                        self.core().app_urls().app_url(&ws)
                    } else {
                        self.core().app_urls().port_url(&ws, l.port)
                    },
                }
            })
            .collect())
    }

    /// Shares a port of one of the caller's workspaces (owners only: an
    /// admin may see and revoke shares, not make them for someone).
    pub async fn set_share(
        &self,
        user: &User,
        id: Uuid,
        port: u16,
        level: ShareLevel,
    ) -> Result<AppShare> {
        let ws = self.core().workspace(user, id).await?;
        if ws.owner_id != user.id {
            return Err(ServiceError::Forbidden(
                "only the workspace's owner may share its ports".into(),
            ));
        }
        check_port(port)?;
        if level == ShareLevel::Public && !self.core().config().proxy.allow_public_shares {
            return Err(ServiceError::Forbidden(
                "public shares are off on this installation (proxy.allow_public_shares)".into(),
            ));
        }
        let share = AppShare {
            workspace_id: id,
            port,
            level,
            created_by: user.id,
            created_at: now_millis(),
        };
        if level == ShareLevel::Owner {
            self.core().store().delete_share(id, port).await?;
        } else {
            self.core().store().put_share(&share).await?;
        }
        Ok(share)
    }

    /// Ends a port's share (its owner or an admin); back to owner-only.
    pub async fn remove_share(&self, user: &User, id: Uuid, port: u16) -> Result<()> {
        self.core().workspace(user, id).await?;
        check_port(port)?;
        if !self.core().store().delete_share(id, port).await? {
            return Err(ServiceError::NotFound(format!(
                "port {port} of this workspace is not shared"
            )));
        }
        Ok(())
    }

    /// Every share, with its workspace (admins only, checked by the caller).
    pub async fn all_shares(&self) -> Result<Vec<(AppShare, Workspace)>> {
        let mut out = Vec::new();
        for s in self.core().store().shares(None).await? {
            if let Some(ws) = self.core().store().workspace(s.workspace_id).await? {
                out.push((s, ws));
            }
        }
        Ok(out)
    }

    /// How long an app request waits for a stopped workspace it wakes.
    pub fn app_wake_wait(&self, navigation: bool) -> Duration {
        let wake = Duration::from_secs(self.core().config().proxy.wake_timeout_s);
        if navigation {
            wake.min(Duration::from_secs(3))
        } else {
            wake
        }
    }
}

fn check_port(port: u16) -> Result<()> {
    if port == 0 {
        return Err(ServiceError::Invalid(
            "port must be between 1 and 65535".into(),
        ));
    }
    Ok(())
}
