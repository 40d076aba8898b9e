//! How project data moves: straight through the volume's directory when
//! Berth can read it (root on the engine's host; fastest), or through the
//! engine's archive API with a never-started helper container otherwise (a
//! remote engine). `backups.volume_access` picks: `auto` (host when
//! readable), `host` or `engine`. Both paths write and read the same archive
//! format, so a backup made one way restores the other.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use uuid::Uuid;

use super::{blocking, Volumes};
use crate::backup::{self, ArchiveError, TarSource, Written};
use crate::config::VolumeAccess;
use crate::domain::backups::Compression;
use crate::domain::cleanup::{LABEL_HELPER, LABEL_INSTANCE, LABEL_REPLICA};
use crate::engine::archive::HELPER_MOUNT;
use crate::engine::Engine;
use crate::service::{Result, ServiceError};

/// How a volume's data is reached.
pub(in crate::service) enum Access {
    /// Its directory on this host.
    Host(PathBuf),
    /// Through the archive API of the engine of its node.
    Engine(Engine),
}

/// A helper container, removed when dropped (also when the request that
/// made it is cancelled).
struct Helper {
    id: String,
    engine: Engine,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let (id, engine) = (self.id.clone(), self.engine.clone());
        tokio::spawn(async move {
            if let Err(e) = engine.remove_container(&id).await {
                tracing::warn!(helper = %id, error = %e, "removing a helper container failed");
            }
        });
    }
}

/// Reads, on a blocking thread, what an async task sends.
struct ChannelRead {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Sends what is written, from a blocking thread, to an async receiver.
struct ChannelWrite {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
}

impl io::Write for ChannelWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a tar stream for the engine is written into.
type TarOut = io::BufWriter<ChannelWrite>;

fn strip_root() -> &'static str {
    HELPER_MOUNT.trim_start_matches('/')
}

impl Volumes {
    /// The directory of a volume's data on this host.
    pub(in crate::service) async fn volume_dir(
        &self,
        engine: &Engine,
        volume: &str,
    ) -> Result<PathBuf> {
        let mp = engine.volume_mountpoint(volume).await?.ok_or_else(|| {
            ServiceError::Conflict(format!("volume {volume} does not exist on the Docker host"))
        })?;
        let dir = PathBuf::from(mp);
        // Readable here: opened (as every walk opens it) and listed.
        let readable = crate::backup::beneath::Dir::open_root(&dir).and_then(|d| d.is_empty());
        if readable.is_err() {
            return Err(ServiceError::VolumeAccess(format!(
                "cannot read the volume's data at {} from here (backups.volume_access = \"host\" \
                 needs Berth to run as root on the Docker host); set it to \"auto\" or \"engine\" \
                 to go through the engine's archive API",
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// How to reach `volume`'s data, on the node `node`, under the
    /// configured policy. Another host's volume is always reached through
    /// its engine (its directory is not here).
    pub(in crate::service) async fn access(&self, node: &str, volume: &str) -> Result<Access> {
        let engine = self.engine_on(node).await?;
        let mode = self.config().backups.volume_access;
        if mode == VolumeAccess::Engine || (!engine.host_local() && mode == VolumeAccess::Auto) {
            if engine.volume_labels(volume).await?.is_none() {
                return Err(ServiceError::Conflict(format!(
                    "volume {volume} does not exist on the Docker host{}",
                    crate::domain::nodes::on_node(node)
                )));
            }
            return Ok(Access::Engine(engine));
        }
        if !engine.host_local() {
            return Err(ServiceError::VolumeAccess(format!(
                "volume {volume} is on node {node}, another host: backups.volume_access = \"host\" \
                 cannot reach it; set it to \"auto\" or \"engine\""
            )));
        }
        match self.volume_dir(&engine, volume).await {
            Ok(dir) => Ok(Access::Host(dir)),
            Err(ServiceError::VolumeAccess(m)) if mode == VolumeAccess::Auto => {
                tracing::debug!(volume, reason = %m, "volume data through the engine");
                Ok(Access::Engine(engine))
            }
            Err(e) => Err(e),
        }
    }

    /// Removes, on every node that answers, the helper containers of this
    /// installation made by a replica not in `live` (one that was killed
    /// while it read or wrote a volume); returns how many. Helpers from
    /// before replicas were recorded are left to the orphaned-containers
    /// job.
    pub(in crate::service) async fn remove_helpers_of_the_gone(&self, live: &[Uuid]) -> usize {
        let mut removed = 0;
        let nodes = match self.berth().core().nodes().names().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "listing nodes to remove helpers failed");
                return 0;
            }
        };
        let instance = &self.config().instance;
        for node in nodes {
            let Ok(engine) = self.engine_on(&node).await else {
                continue;
            };
            let Ok(list) = engine.list_containers_seen().await else {
                continue;
            };
            for c in list {
                let ours = c.labels.get(LABEL_HELPER).map(String::as_str) == Some("true")
                    && c.labels.get(LABEL_INSTANCE) == Some(instance);
                let gone = c
                    .labels
                    .get(LABEL_REPLICA)
                    .and_then(|r| Uuid::parse_str(r).ok())
                    .is_some_and(|r| !live.contains(&r));
                if ours && gone {
                    match engine.remove_container(&c.id).await {
                        Ok(()) | Err(crate::engine::EngineError::NotFound(_)) => {
                            tracing::info!(%node, helper = %c.name, "removed a gone replica's helper container");
                            removed += 1;
                        }
                        Err(e) => {
                            tracing::warn!(%node, helper = %c.name, error = %e, "removing a gone replica's helper failed")
                        }
                    }
                }
            }
        }
        removed
    }

    async fn helper(&self, engine: &Engine, volume: &str, read_only: bool) -> Result<Helper> {
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_HELPER.to_string(), "true".to_string());
        labels.insert(
            LABEL_REPLICA.to_string(),
            self.berth().core().replicas().id().to_string(),
        );
        let name = format!(
            "berth-helper-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let id = engine
            .create_helper(&name, volume, read_only, labels)
            .await?;
        Ok(Helper {
            id,
            engine: engine.clone(),
        })
    }

    /// The volume's tar stream (entries under `data/`), readable on a
    /// blocking thread; the helper lives as long as the returned guard.
    async fn volume_reader(&self, engine: &Engine, volume: &str) -> Result<(ChannelRead, Helper)> {
        let helper = self.helper(engine, volume, true).await?;
        let mut stream = Box::pin(engine.download_volume(&helper.id));
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(|e| io::Error::other(e.to_string()));
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok((
            ChannelRead {
                rx,
                cur: Bytes::new(),
            },
            helper,
        ))
    }

    /// Writes an archive of `volume` to `out` through the engine.
    pub(in crate::service) async fn archive_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
        out: PathBuf,
        compression: Compression,
    ) -> Result<Written> {
        let (reader, helper) = self.volume_reader(engine, volume).await?;
        let written = blocking(move || {
            backup::write_archive_from(
                TarSource::Stream {
                    reader: Box::new(reader),
                    strip: strip_root(),
                },
                &out,
                compression,
            )
        })
        .await;
        drop(helper);
        written
    }

    /// Sizes `volume` by reading its tar stream through the engine.
    pub(in crate::service) async fn size_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
    ) -> Result<u64> {
        let (reader, helper) = self.volume_reader(engine, volume).await?;
        let size = blocking(move || backup::tar_stream_size(reader)).await;
        drop(helper);
        // The stream counts the volume's root directory itself too.
        size
    }

    /// The digest of what `volume` holds (`backup::tar_stream_digest`)
    /// and its number of entries, read through the engine.
    pub(in crate::service) async fn digest_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
    ) -> Result<(String, u64)> {
        let (reader, helper) = self.volume_reader(engine, volume).await?;
        let digest = blocking(move || backup::tar_stream_digest(reader)).await;
        drop(helper);
        digest
    }

    /// Whether `volume` holds nothing (through the engine).
    pub(in crate::service) async fn is_empty_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
    ) -> Result<bool> {
        let (reader, helper) = self.volume_reader(engine, volume).await?;
        let entries = blocking(move || {
            let mut a = tar::Archive::new(reader);
            let mut n = 0;
            for e in a
                .entries()
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
            {
                e.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
                n += 1;
                // The root and one more: not empty.
                if n > 1 {
                    break;
                }
            }
            Ok(n)
        })
        .await;
        drop(helper);
        Ok(entries? <= 1)
    }

    /// Extracts a verified archive into `volume` (new and empty) through the
    /// engine. The caller has checked the checksum and every entry first:
    /// the engine extracts as the bytes arrive.
    pub(in crate::service) async fn extract_via_engine(
        &self,
        engine: &Engine,
        archive: &Path,
        compression: Compression,
        volume: &str,
        rules: backup::ReadRules,
    ) -> Result<()> {
        let archive = archive.to_path_buf();
        // Entries go under `data/` and are unpacked at `/`: the engine
        // refuses symlinks that point above the directory it unpacks in,
        // and a volume may hold `../..` links that are fine inside the
        // workspace.
        self.upload_via_engine(
            engine,
            volume,
            move |w| {
                backup::write_prefixed_tar(&archive, compression, strip_root(), w, rules)
                    .map(|(w, _)| w)
            },
            |e| ServiceError::Refused(format!("the engine could not extract the archive: {e}")),
        )
        .await
    }

    /// Writes the tree at `src` (a clone Berth made on this host) into
    /// `volume` at `dir/`, owned by `owner`, through the engine of the
    /// volume's node: a node that is not this host included.
    pub(in crate::service) async fn fill_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
        src: &Path,
        dir: &str,
        owner: (u64, u64),
    ) -> Result<()> {
        let src = src.to_path_buf();
        let prefix = format!("{}/{dir}", strip_root());
        self.upload_via_engine(
            engine,
            volume,
            move |w| backup::tar_tree_as(&src, &prefix, owner, w),
            |e| {
                ServiceError::Storage(format!(
                    "the engine could not write the clone into the volume: {e}"
                ))
            },
        )
        .await
    }

    /// Streams the tar `write` makes (entries under `data/`, on a blocking
    /// thread) into `volume` through a helper of `engine`, unpacked at `/`
    /// as the bytes arrive; a failure of `write` fails the upload, and a
    /// failed upload is `refused`'s error.
    async fn upload_via_engine(
        &self,
        engine: &Engine,
        volume: &str,
        write: impl FnOnce(TarOut) -> std::result::Result<TarOut, ArchiveError> + Send + 'static,
        refused: impl FnOnce(crate::engine::EngineError) -> ServiceError,
    ) -> Result<()> {
        let helper = self.helper(engine, volume, false).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
        let pump = tokio::task::spawn_blocking(move || {
            let w = io::BufWriter::with_capacity(256 * 1024, ChannelWrite { tx: tx.clone() });
            let done = write(w)
                .and_then(|mut w| w.flush().map_err(|e| ArchiveError::Corrupt(e.to_string())));
            if let Err(e) = done {
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let uploaded = engine.upload_tar(&helper.id, "/", body).await;
        let _ = pump.await;
        drop(helper);
        uploaded.map_err(refused)
    }

    /// Copies `src`'s data into `dst` through the engines (the same one,
    /// or another node's): the source helper's tar stream goes straight
    /// into the target helper.
    pub(in crate::service) async fn copy_via_engine(
        &self,
        (from_engine, src): (&Engine, &str),
        (to_engine, dst): (&Engine, &str),
    ) -> Result<()> {
        let from = self.helper(from_engine, src, true).await?;
        let to = self.helper(to_engine, dst, false).await?;
        let body = from_engine
            .download_volume(&from.id)
            .map(|r| r.map_err(|e| io::Error::other(e.to_string())));
        // Entries are `data/…`; unpacked at `/` they land in the mount.
        let r = to_engine.upload_tar(&to.id, "/", body).await;
        drop((from, to));
        Ok(r?)
    }
}
