//! Type images from a registry: an admin's pull (`POST
//! /api/workspaces/types/{type}/pull`, `berth type pull`), its progress, and
//! the pull of a missing image when a workspace starts
//! (`images.pull_on_start`). One pull per image at a time: asking again
//! joins the one under way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use super::{Result, ServiceError, Types};
use crate::domain::images::{registry_of, PullProgress, PullState};
use crate::domain::{now_millis, User};
use crate::engine::EngineError;

/// Pulls under way or finished, by image.
pub type Pulls = Mutex<std::collections::HashMap<String, Arc<Mutex<PullProgress>>>>;

impl Types {
    /// Starts pulling `type_name`'s image (or joins the pull under way) and
    /// answers its progress once it has begun, or failed at once.
    pub async fn pull_type_image(&self, user: &User, type_name: &str) -> Result<PullProgress> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may pull a type's image".into(),
            ));
        }
        let image = self.type_image(type_name)?;
        if image.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "type {type_name:?} has no image configured (types.{type_name}.image)"
            )));
        }
        let engine = self.core().local_engine().clone();
        let progress = self.start_pull(&engine, crate::domain::nodes::LOCAL, &image);
        // An unreachable registry fails within moments: say so now.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let p = progress.lock().expect("pull poisoned").clone();
            if p.state == PullState::Failed {
                return Err(ServiceError::Registry(p.error.unwrap_or_default()));
            }
            if p.state == PullState::Done
                || !p.layers.is_empty()
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last pull of `type_name`'s image, if there was one.
    pub async fn type_pull(&self, user: &User, type_name: &str) -> Result<PullProgress> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may see a type's pull".into(),
            ));
        }
        let image = self.type_image(type_name)?;
        let here = {
            let pulls = self.inner.pulls.lock().expect("pulls poisoned");
            pulls
                .get(&image)
                .map(|p| p.lock().expect("pull poisoned").clone())
        };
        // The newest: this replica's as it goes, or another's as recorded.
        let recorded = self.core().store().pull(&image).await?;
        match (here, recorded) {
            (Some(h), Some(r)) if r.started_at > h.started_at => Ok(r),
            (Some(h), _) => Ok(h),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(ServiceError::NotFound(format!("no pull of {image}"))),
        }
    }

    /// The image of a type named in a path (unknown: not found).
    fn type_image(&self, type_name: &str) -> Result<String> {
        self.core()
            .config()
            .types
            .get(type_name)
            .map(|t| t.image.clone())
            .ok_or_else(|| ServiceError::NotFound(format!("no workspace type {type_name:?}")))
    }

    /// Pulls `image` onto the node `node` (whose engine is `engine`) and
    /// waits for the end (a workspace's start there).
    pub(crate) async fn pull_and_wait(
        &self,
        engine: &crate::engine::Engine,
        node: &str,
        image: &str,
    ) -> Result<()> {
        let progress = self.start_pull(engine, node, image);
        loop {
            let p = progress.lock().expect("pull poisoned").clone();
            match p.state {
                PullState::Done => return Ok(()),
                PullState::Failed => {
                    return Err(ServiceError::Conflict(format!(
                        "image {image} is not on node {node} and pulling it failed: {}",
                        p.error.unwrap_or_default()
                    )))
                }
                PullState::Pulling => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Pulls are kept by image on `local` (what an admin's pull shows) and
    /// by image and node elsewhere.
    fn start_pull(
        &self,
        engine: &crate::engine::Engine,
        node: &str,
        image: &str,
    ) -> Arc<Mutex<PullProgress>> {
        let key = if node == crate::domain::nodes::LOCAL {
            image.to_string()
        } else {
            format!("{image} on {node}")
        };
        let mut pulls = self.inner.pulls.lock().expect("pulls poisoned");
        if let Some(p) = pulls.get(&key) {
            if p.lock().expect("pull poisoned").state == PullState::Pulling {
                return p.clone();
            }
        }
        let progress = Arc::new(Mutex::new(PullProgress::new(image, now_millis())));
        pulls.insert(key.clone(), progress.clone());
        drop(pulls);
        let registry = registry_of(image).to_string();
        let credentials = self
            .core()
            .config()
            .images
            .registries
            .get(&registry)
            .map(|a| (a.username.clone(), a.password.expose().to_string()));
        let mut stream = Box::pin(engine.pull_image(image, credentials));
        let (p, image, berth) = (progress.clone(), image.to_string(), self.clone());
        tokio::spawn(async move {
            // What the other replicas read: at the start, at most twice a
            // second while it goes, and at the end.
            let save = |p: &Arc<Mutex<PullProgress>>| {
                let (berth, key, p) = (
                    berth.clone(),
                    key.clone(),
                    p.lock().expect("pull poisoned").clone(),
                );
                async move {
                    let me = berth.core().replicas().id();
                    if let Err(e) = berth
                        .core()
                        .store()
                        .save_pull(&key, &p, me, now_millis())
                        .await
                    {
                        tracing::warn!(image = %p.image, error = %e, "recording a pull's progress failed");
                    }
                }
            };
            save(&p).await;
            let mut saved = std::time::Instant::now();
            let mut error = None;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        p.lock().expect("pull poisoned").apply(&ev);
                        if saved.elapsed() >= Duration::from_millis(500) {
                            save(&p).await;
                            saved = std::time::Instant::now();
                        }
                    }
                    Err(e) => {
                        error = Some(match e {
                            EngineError::NotFound(m) => {
                                format!("the registry {registry} has no image {image}: {m}")
                            }
                            EngineError::Unavailable(m) => {
                                format!("the Docker engine is unreachable: {m}")
                            }
                            other => format!("pulling {image} from {registry} failed: {other}"),
                        });
                        break;
                    }
                }
            }
            metrics::counter!("berth_image_pulls_total", "outcome" => if error.is_some() { "failed" } else { "done" })
                .increment(1);
            match &error {
                Some(e) => tracing::warn!(%image, error = %e, "image pull failed"),
                None => tracing::info!(%image, "image pulled"),
            }
            p.lock().expect("pull poisoned").finish(error, now_millis());
            save(&p).await;
        });
        progress
    }
}
