//! Quotas in force: a user's limits (their role's defaults, an admin's
//! overrides), what they use now, and [`Quotas::reserve`], which checks an
//! action's need under the user's lock (and the site's, when caps are
//! set), shared with every replica: the lock is held until the action has
//! recorded what it takes (a workspace `starting`, a backup written), so
//! two concurrent starts cannot both pass a limit of one. The decisions
//! are `domain::quota`'s.

use std::sync::Arc;

use uuid::Uuid;

use super::{Core, Result, ServiceError, Types, WorkspaceLock};
use crate::config::RoleQuota;
use crate::domain::quota::{check, check_site, Limits, Need, Overrides, RoleLimits, Site, Usage};
use crate::domain::{Role, User, Workspace};
use crate::store::LockKey;

/// A user's limits and usage.
#[derive(Debug, Clone)]
pub struct QuotaReport {
    pub user: User,
    pub limits: Limits,
    pub usage: Usage,
    /// What all running workspaces reserve, with the site's caps (when
    /// any is set).
    pub site: Option<Site>,
}

/// The locks an action's quota check holds until the action has taken
/// what it needs.
pub struct QuotaHold {
    _user: Option<WorkspaceLock>,
    _site: Option<WorkspaceLock>,
}

fn role_limits(q: &RoleQuota) -> RoleLimits {
    RoleLimits {
        workspaces: q.workspaces,
        running: q.running,
        cpus: q.cpus,
        memory_mb: q.memory_mb,
        storage_mb: q.storage_mb,
    }
}

/// Users' limits and what they use (see the module's doc).
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    types: Types,
}

impl Quotas {
    pub fn new(core: Core, types: Types) -> Quotas {
        Quotas {
            inner: Arc::new(Inner { core, types }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    fn types(&self) -> &Types {
        &self.inner.types
    }
}

impl Quotas {
    fn role_defaults(&self, role: Role) -> RoleLimits {
        let q = &self.core().config().quotas;
        match role {
            Role::Admin => role_limits(&q.admin),
            Role::Member => role_limits(&q.member),
        }
    }

    fn site_capped(&self) -> bool {
        let s = &self.core().config().quotas.site;
        s.cpus.is_some() || s.memory_mb.is_some()
    }

    /// What a workspace reserves while it runs: its CPU limit, and its
    /// memory reservation (else its limit), as placement counts them.
    fn reserves(&self, ws: &Workspace) -> (f64, u64) {
        match self.types().effective_limits(ws) {
            Ok(l) => (l.cpus, l.memory_reservation_mb.unwrap_or(l.memory_mb)),
            Err(_) => (0.0, 0),
        }
    }

    /// What `owner` holds and uses now.
    async fn usage_of(&self, owner: Uuid) -> Result<Usage> {
        let store = self.core().store();
        let reserving = store.reserving_workspaces(Some(owner)).await?;
        let storage = store.storage_of(owner).await?;
        let (mut cpus, mut memory_mb) = (0.0, 0);
        for w in &reserving {
            let (c, m) = self.reserves(w);
            cpus += c;
            memory_mb += m;
        }
        Ok(Usage {
            workspaces: store.count_workspaces_of(owner).await?,
            running: reserving.len() as u64,
            cpus,
            memory_mb,
            volume_bytes: storage.volume_bytes,
            backup_bytes: storage.backup_bytes,
            measured_at: storage.measured_at,
        })
    }

    /// What every running workspace reserves, with the caps.
    async fn site(&self) -> Result<Site> {
        let caps = &self.core().config().quotas.site;
        let (mut cpus, mut memory_mb) = (0.0, 0);
        for w in self.core().store().reserving_workspaces(None).await? {
            let (c, m) = self.reserves(&w);
            cpus += c;
            memory_mb += m;
        }
        Ok(Site {
            cpus,
            memory_mb,
            cap_cpus: caps.cpus,
            cap_memory_mb: caps.memory_mb,
        })
    }

    /// `user`'s limits in force: their role's, with an admin's overrides.
    async fn limits_of(&self, user: &User) -> Result<Limits> {
        let overrides = self.core().store().quota_overrides(user.id).await?;
        Ok(Limits::of(&self.role_defaults(user.role), &overrides))
    }

    async fn report_of(&self, user: User) -> Result<QuotaReport> {
        let limits = self.limits_of(&user).await?;
        let usage = self.usage_of(user.id).await?;
        let site = if self.site_capped() {
            Some(self.site().await?)
        } else {
            None
        };
        Ok(QuotaReport {
            user,
            limits,
            usage,
            site,
        })
    }

    /// The caller's own limits and usage.
    pub async fn quota(&self, user: &User) -> Result<QuotaReport> {
        self.report_of(user.clone()).await
    }

    /// Another user's (admins).
    pub async fn quota_of(&self, admin: &User, id: Uuid) -> Result<QuotaReport> {
        let user = self.quota_subject(admin, id).await?;
        self.report_of(user).await
    }

    /// Every user's (admins), oldest account first.
    pub async fn quotas(&self, admin: &User) -> Result<Vec<QuotaReport>> {
        if !admin.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may see everyone's quota".into(),
            ));
        }
        self.all_quotas().await
    }

    /// Every user's limits and usage, counted by a handful of grouped
    /// queries (not a few per user): what the admins' page and the metrics
    /// read.
    pub async fn all_quotas(&self) -> Result<Vec<QuotaReport>> {
        let store = self.core().store();
        let counts = store.workspace_counts().await?;
        let storage = store.storage_by_owner().await?;
        let overrides = store.all_quota_overrides().await?;
        let mut reserving: std::collections::HashMap<Uuid, (u64, f64, u64)> = Default::default();
        for w in store.reserving_workspaces(None).await? {
            let (c, m) = self.reserves(&w);
            let e = reserving.entry(w.owner_id).or_default();
            e.0 += 1;
            e.1 += c;
            e.2 += m;
        }
        let site = if self.site_capped() {
            Some(self.site().await?)
        } else {
            None
        };
        let mut out = Vec::new();
        for (user, _) in self.core().accounts().user_summaries().await? {
            let o = overrides.get(&user.id).copied().unwrap_or_default();
            let s = storage.get(&user.id).copied().unwrap_or_default();
            let (running, cpus, memory_mb) = reserving.get(&user.id).copied().unwrap_or_default();
            out.push(QuotaReport {
                limits: Limits::of(&self.role_defaults(user.role), &o),
                usage: Usage {
                    workspaces: counts.get(&user.id).copied().unwrap_or(0),
                    running,
                    cpus,
                    memory_mb,
                    volume_bytes: s.volume_bytes,
                    backup_bytes: s.backup_bytes,
                    measured_at: s.measured_at,
                },
                site,
                user,
            });
        }
        Ok(out)
    }

    /// Sets a user's overrides (admins); what is already used stays, and
    /// counts against the new limits from the next action on.
    pub async fn set_quota(&self, admin: &User, id: Uuid, o: Overrides) -> Result<QuotaReport> {
        let user = self.quota_subject(admin, id).await?;
        for (name, v) in [("cpus", o.cpus)] {
            if let crate::domain::quota::Setting::Limit(c) = v {
                if !(0.0..=10_000.0).contains(&c) || !c.is_finite() {
                    return Err(ServiceError::Invalid(format!(
                        "{name} must be between 0 and 10000"
                    )));
                }
            }
        }
        self.core().store().set_quota_overrides(user.id, &o).await?;
        self.report_of(user).await
    }

    async fn quota_subject(&self, admin: &User, id: Uuid) -> Result<User> {
        if !admin.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may see or set another user's quota".into(),
            ));
        }
        self.core()
            .store()
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user {id} not found")))
    }

    /// Checks that `need` fits `owner`'s quota (and the site's caps) and
    /// holds the locks until the returned hold is dropped: the caller
    /// records what it takes before dropping it. Nothing that grows:
    /// nothing is checked, nothing held. Lock order: a workspace's or a
    /// project's lock first, then the user's, then the site's.
    pub(crate) async fn reserve(&self, owner: Uuid, need: Need) -> Result<QuotaHold> {
        let site_binds = self.site_capped() && (need.cpus > 0.0 || need.memory_mb > 0);
        let mut hold = QuotaHold {
            _user: None,
            _site: None,
        };
        if need == Need::default() {
            return Ok(hold);
        }
        // The limits are read before the lock: an admin's change counts
        // from the next action on. Where no limit bounds the need (the
        // default: none is set) nothing is measured or locked, so an
        // unlimited user's start costs no lock and no usage queries.
        let owner_user = self
            .core()
            .store()
            .user(owner)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user {owner} not found")))?;
        let limits = self.limits_of(&owner_user).await?;
        if limits.bind(&need) {
            hold._user = Some(self.core().lock_key(owner, LockKey::Quota(owner)).await?);
            let usage = self.usage_of(owner).await?;
            if let Err(why) = check(&usage, &need, &limits) {
                metrics::counter!("berth_quota_refusals_total", "scope" => "user").increment(1);
                return Err(ServiceError::Quota(why));
            }
        }
        if site_binds {
            hold._site = Some(self.core().lock_key(Uuid::nil(), LockKey::Site).await?);
            if let Err(why) = check_site(&self.site().await?, &need) {
                metrics::counter!("berth_quota_refusals_total", "scope" => "site").increment(1);
                return Err(ServiceError::Quota(why));
            }
        }
        Ok(hold)
    }

    /// What starting `ws` needs of its owner's quota: nothing when it
    /// already counts as running.
    pub(crate) fn start_need(&self, ws: &Workspace) -> Need {
        use crate::domain::WorkspaceStatus::{Running, Starting};
        if matches!(ws.status, Running | Starting) {
            return Need::default();
        }
        let (c, m) = self.reserves(ws);
        Need::start(c, m)
    }
}
