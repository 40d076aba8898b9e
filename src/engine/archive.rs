//! Volume data through the engine's archive API, for when Berth cannot read
//! a volume's directory itself (a remote engine, or not running as root):
//! a helper container that mounts the volume is created and never started,
//! and tar streams go in and out of it (`docker cp` does the same). The
//! helper's image is empty and imported from a tar Berth makes, so nothing
//! is ever pulled.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptions, DownloadFromContainerOptions,
    UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError, Result};

/// The helper image: one empty directory, imported locally.
pub const HELPER_IMAGE: &str = "berth/helper:empty";
/// Where a helper mounts the volume.
pub const HELPER_MOUNT: &str = "/data";

/// A tar holding just `data/`: the rootfs of the helper image.
fn empty_rootfs() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, "data/", std::io::empty())
        .expect("tar into memory");
    b.into_inner().expect("tar into memory")
}

impl Engine {
    /// Imports the helper image unless it is there already.
    pub async fn ensure_helper_image(&self) -> Result<()> {
        if self.image_present(HELPER_IMAGE).await? {
            return Ok(());
        }
        let (repo, tag) = HELPER_IMAGE.split_once(':').expect("name:tag");
        let opts = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(
            Some(opts),
            Some(bollard::body_full(Bytes::from(empty_rootfs()))),
            None,
        );
        while let Some(step) = progress.next().await {
            step?;
        }
        Ok(())
    }

    /// Creates (never starts) a helper container mounting `volume` at
    /// [`HELPER_MOUNT`]; returns its id. The caller removes it.
    pub async fn create_helper(
        &self,
        name: &str,
        volume: &str,
        read_only: bool,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        self.ensure_helper_image().await?;
        let body = ContainerCreateBody {
            image: Some(HELPER_IMAGE.into()),
            // Never run; the engine still wants a command for an image
            // without one.
            cmd: Some(vec!["/berth-helper-never-runs".into()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some(HELPER_MOUNT.into()),
                    source: Some(volume.into()),
                    typ: Some(MountType::VOLUME),
                    read_only: Some(read_only),
                    ..Default::default()
                }]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        Ok(self.docker.create_container(Some(opts), body).await?.id)
    }

    /// The volume's content as a tar stream, entries under `data/`. A task
    /// drives the engine's response, so the stream owns nothing borrowed.
    pub fn download_volume(
        &self,
        helper: &str,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let docker = self.docker.clone();
        let helper = helper.to_string();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let opts = DownloadFromContainerOptions {
                path: format!("{HELPER_MOUNT}/"),
            };
            let mut s = docker.download_from_container(&helper, Some(opts));
            while let Some(item) = s.next().await {
                let item = item.map_err(EngineError::from);
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    /// Extracts a tar stream into the helper's filesystem at `path` (owners
    /// kept as in the archive).
    pub async fn upload_tar(
        &self,
        helper: &str,
        path: &str,
        tar: impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<()> {
        let opts = UploadToContainerOptions {
            path: path.into(),
            // Owners come from the archive's headers (the helper has no
            // user to map them to).
            ..Default::default()
        };
        self.docker
            .upload_to_container(helper, Some(opts), bollard::body_try_stream(tar))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_rootfs_is_one_directory() {
        let tar = empty_rootfs();
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["data/"]);
    }
}
