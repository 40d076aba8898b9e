//! Container logs of a workspace: ownership, the container, and a count of
//! the follow streams open right now (each one holds an engine connection,
//! so a leak would show there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::Stream;
use uuid::Uuid;

use super::super::{Result, ServiceError};
use super::Observe;
use crate::domain::User;
use crate::engine::{EngineError, LogChunk, LogQuery};

/// Counts an open log stream while it lives.
pub struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    fn new(counter: &Arc<AtomicUsize>) -> StreamGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        StreamGuard(counter.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A workspace's log stream and the guard that counts it.
pub struct WorkspaceLogs<S> {
    pub container_id: String,
    pub stream: S,
    pub guard: StreamGuard,
}

impl Observe {
    /// Log streams open right now (plain and SSE).
    pub fn active_log_streams(&self) -> usize {
        self.inner.log_streams.load(Ordering::SeqCst)
    }

    /// The logs of a workspace's container, running or stopped.
    pub async fn workspace_logs(
        &self,
        user: &User,
        id: Uuid,
        q: LogQuery,
    ) -> Result<
        WorkspaceLogs<
            impl Stream<Item = std::result::Result<LogChunk, EngineError>> + Send + 'static,
        >,
    > {
        let ws = self.core().workspace(user, id).await?;
        let engine = self.core().engine_of(&ws).await?;
        let c = self
            .container_on(&ws.node, &ws.container_name())
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(
                    "the workspace has no container, so no logs yet; start it first".into(),
                )
            })?;
        Ok(WorkspaceLogs {
            stream: engine.logs(&c.id, &q),
            container_id: c.id,
            guard: StreamGuard::new(&self.inner.log_streams),
        })
    }

    /// A guard for a stream that is not a log stream but holds engine
    /// resources the same way (stats streams).
    pub fn stream_guard(&self) -> StreamGuard {
        StreamGuard::new(&self.inner.log_streams)
    }
}
