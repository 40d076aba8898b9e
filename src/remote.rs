//! Remote copies of backups in S3-compatible object storage, through the
//! `object_store` crate. The only module that imports it.
//!
//! Layout under the configured prefix: `<project id>/<backup id>.tar.zst`
//! (or `.tar.gz`), and beside it `<backup id>.json`, the catalogue entry,
//! so a bucket alone says what each archive is when the host and its
//! database are gone. Uploads carry the archive's SHA-256 (the store
//! checks the bytes it received against it); downloads are hashed on the
//! way and refused unless they match the catalogue.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::RemoteConfig;

/// The catalogue entry stored beside each archive (`<backup id>.json`):
/// what a bucket alone says about an archive once the host and its database
/// are gone. A format of its own, versioned (`v`; entries written before it
/// had one are version 1), not the API's backup shape: it must stay
/// readable by whatever Berth reads the bucket years later.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    #[serde(default = "CatalogueEntry::first_version")]
    pub v: u32,
    pub id: uuid::Uuid,
    pub project_id: uuid::Uuid,
    pub project_name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub completed_at: Option<String>,
    /// `zstd` or `gzip`.
    pub compression: String,
    pub size_bytes: Option<u64>,
    /// Of the archive, hex.
    pub sha256: String,
    pub crash_consistent: bool,
    /// The archive's object name, beside this entry.
    pub archive: String,
}

impl CatalogueEntry {
    /// The version this Berth writes.
    pub const VERSION: u32 = 1;

    fn first_version() -> u32 {
        1
    }
}

/// Archives up to this size go up in one request; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 64 * 1024 * 1024;
/// Bytes read from the archive per part (S3's minimum part is 5 MiB).
const PART: usize = 16 * 1024 * 1024;

/// What went wrong with the remote store.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The configuration cannot work; the message says which key.
    #[error("backups.remote: {0}")]
    Config(String),
    /// The store refused or could not be reached.
    #[error("remote store: {0}")]
    Store(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// What came back is not what was stored.
    #[error("the remote copy is damaged: {0}")]
    Corrupt(String),
}

impl From<object_store::Error> for RemoteError {
    fn from(e: object_store::Error) -> Self {
        RemoteError::Store(e.to_string())
    }
}

/// The remote store, ready to use.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    bucket: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote(s3://{}/{})", self.bucket, self.prefix)
    }
}

impl Remote {
    /// `None` when remote copies are off.
    pub fn from_config(c: &RemoteConfig) -> Result<Option<Remote>, RemoteError> {
        if !c.enabled() {
            return Ok(None);
        }
        c.check().map_err(RemoteError::Config)?;
        let (bucket, prefix) = c.bucket_and_prefix().map_err(RemoteError::Config)?;
        // Credentials from the environment (AWS_*) unless configured.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_region(&c.region)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_allow_http(c.allow_http);
        if !c.endpoint.is_empty() {
            // A custom endpoint is an S3-compatible server: path-style
            // addressing works everywhere, virtual hosts not always.
            b = b
                .with_endpoint(c.endpoint.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if !c.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(c.secret_access_key.expose());
        }
        let store = b.build()?;
        Ok(Some(Remote {
            store: Arc::new(store),
            prefix,
            bucket,
        }))
    }

    /// `s3://bucket/key`, for messages.
    pub fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    /// The object key of a file name under the prefix.
    pub fn key(&self, project: &str, file: &str) -> String {
        if self.prefix.is_empty() {
            format!("{project}/{file}")
        } else {
            format!("{}/{project}/{file}", self.prefix)
        }
    }

    /// Uploads a file; `sha256` (hex) is what it must hash to.
    pub async fn put_file(&self, key: &str, file: &Path, sha256: &str) -> Result<u64, RemoteError> {
        let path = ObjectPath::from(key);
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| RemoteError::Io(format!("opening {}: {e}", file.display())))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| RemoteError::Io(e.to_string()))?
            .len();
        let mut hasher = Sha256::new();
        if size <= SINGLE_PUT_MAX {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf)
                .await
                .map_err(|e| RemoteError::Io(e.to_string()))?;
            hasher.update(&buf);
            check_sum(hasher, sha256, "the local archive")?;
            self.store.put(&path, PutPayload::from(buf)).await?;
        } else {
            let upload = self.store.put_multipart(&path).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            let sent: Result<(), RemoteError> = async {
                loop {
                    let n = f
                        .read(&mut buf)
                        .await
                        .map_err(|e| RemoteError::Io(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    // At most two parts in flight: bounded memory.
                    w.wait_for_capacity(2).await?;
                    w.write(&buf[..n]);
                }
                Ok(())
            }
            .await;
            let checked = sent.and_then(|()| check_sum(hasher, sha256, "the local archive"));
            match checked {
                Ok(()) => {
                    w.finish().await?;
                }
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            }
        }
        let meta = self.store.head(&path).await?;
        if meta.size != size {
            return Err(RemoteError::Corrupt(format!(
                "{} holds {} bytes, the archive {size}",
                self.describe(key),
                meta.size
            )));
        }
        Ok(size)
    }

    /// Stores a small document (the catalogue entry beside an archive).
    pub async fn put_entry(&self, key: &str, entry: &CatalogueEntry) -> Result<(), RemoteError> {
        let body = serde_json::to_vec_pretty(entry).expect("JSON");
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Downloads an object into `dest` (created or truncated), refusing it
    /// unless it hashes to `sha256` (hex). On refusal `dest` is removed.
    pub async fn get_file(&self, key: &str, dest: &Path, sha256: &str) -> Result<u64, RemoteError> {
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| RemoteError::Io(format!("creating {}: {e}", dest.display())))?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let result: Result<(), RemoteError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                n += chunk.len() as u64;
                out.write_all(&chunk)
                    .await
                    .map_err(|e| RemoteError::Io(e.to_string()))?;
            }
            out.sync_all()
                .await
                .map_err(|e| RemoteError::Io(e.to_string()))?;
            check_sum(hasher, sha256, &self.describe(key))
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e);
        }
        Ok(n)
    }

    /// Removes an object; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn check_sum(hasher: Sha256, want: &str, what: &str) -> Result<(), RemoteError> {
    let got = hex::encode(hasher.finalize());
    if got != want {
        return Err(RemoteError::Corrupt(format!(
            "{what} hashes to {got}, the catalogue says {want}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_entries_written_before_the_version_field_read_as_version_1() {
        let old = r#"{"id":"7d3f4c1e-0000-4000-8000-000000000001","projectId":"7d3f4c1e-0000-4000-8000-000000000002","projectName":"web","createdAt":"2026-11-01T10:00:00Z","completedAt":"2026-11-01T10:00:05Z","compression":"zstd","sizeBytes":1234,"sha256":"ab","crashConsistent":false,"archive":"7d3f4c1e-0000-4000-8000-000000000001.tar.zst"}"#;
        let e: CatalogueEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.v, 1);
        assert_eq!(e.project_name.as_deref(), Some("web"));
        // What this version writes carries its version and reads back.
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.starts_with(r#"{"v":1,"id":"#), "{text}");
        assert_eq!(serde_json::from_str::<CatalogueEntry>(&text).unwrap(), e);
    }

    fn config(url: &str, endpoint: &str) -> RemoteConfig {
        RemoteConfig::for_tests(url, endpoint)
    }

    #[test]
    fn keys_sit_under_the_prefix_by_project() {
        let r = Remote::from_config(&config("s3://b-1/team/", ""))
            .unwrap()
            .unwrap();
        assert_eq!(r.key("p", "x.tar.zst"), "team/p/x.tar.zst");
        let r = Remote::from_config(&config("s3://b-1", ""))
            .unwrap()
            .unwrap();
        assert_eq!(r.key("p", "x.tar.zst"), "p/x.tar.zst");
        assert_eq!(r.describe("p/x"), "s3://b-1/p/x");
        let shown = format!("{:?}", config("s3://b-1", ""));
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"s\""),
            "{shown}"
        );
    }
}
