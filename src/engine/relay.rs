//! Reaching a port inside a workspace through the engine, without publishing
//! it and without the container's IP address: Berth copies a small static
//! program (`berth-relay`, built by `build.rs`) into the container once, and
//! each connection is a `docker exec` of it whose standard input and output
//! are the connection's two directions (as `kubectl port-forward` relays
//! through socat). Also: which TCP ports the container listens on.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::UploadToContainerOptions;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::StreamReader;

use super::{Engine, EngineError, Result};
use crate::domain::apps::{listening_ports, parse_proc_net_tcp, Listener};

/// The relay, compiled statically for Berth's own architecture.
const RELAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-relay"));
/// Where the relay lives in a container (its root is always a directory).
pub const RELAY_PATH: &str = "/.berth-relay";

/// Containers the relay was copied into by this process.
#[derive(Debug, Default)]
pub(super) struct RelayState {
    copied: tokio::sync::Mutex<HashSet<String>>,
}

/// A connection to a port inside a container, carried by an exec.
pub struct RelayStream {
    reader: StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>,
    writer: Pin<Box<dyn AsyncWrite + Send>>,
}

impl AsyncRead for RelayStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

/// A tar holding the relay as `.berth-relay`, executable by anyone.
fn relay_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(RELAY.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, RELAY_PATH.trim_start_matches('/'), RELAY)
        .expect("tar into memory");
    b.into_inner().expect("tar into memory")
}

impl Engine {
    /// Copies the relay into a running container, once per container.
    async fn ensure_relay(&self, container: &str) -> Result<()> {
        let mut copied = self.relay.copied.lock().await;
        if copied.contains(container) {
            return Ok(());
        }
        let opts = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(
                container,
                Some(opts),
                bollard::body_full(Bytes::from(relay_tar())),
            )
            .await
            .map_err(|e| match EngineError::from(e) {
                EngineError::Rejected(m) | EngineError::Failed(m) => EngineError::Failed(format!(
                    "cannot copy the port relay into the container (a read-only root file system?): {m}"
                )),
                other => other,
            })?;
        copied.insert(container.to_string());
        Ok(())
    }

    async fn exec_relay(
        &self,
        container: &str,
        args: &[&str],
        stdin: bool,
    ) -> Result<(
        BoxStream<'static, std::result::Result<LogOutput, bollard::errors::Error>>,
        Pin<Box<dyn AsyncWrite + Send>>,
    )> {
        self.ensure_relay(container).await?;
        let mut cmd = vec![RELAY_PATH.to_string()];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(cmd),
                    ..Default::default()
                },
            )
            .await?;
        match self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await?
        {
            StartExecResults::Attached { output, input } => Ok((output.boxed(), input)),
            StartExecResults::Detached => Err(EngineError::Failed("exec did not attach".into())),
        }
    }

    /// Opens a connection to `port` on the container's loopback (or
    /// wherever it listens inside). `Ok(Err(message))` when nothing listens
    /// there.
    pub async fn relay_connect(
        &self,
        container: &str,
        port: u16,
    ) -> Result<std::result::Result<RelayStream, String>> {
        let (output, input) = self
            .exec_relay(container, &["connect", &port.to_string()], true)
            .await?;
        let mut stderr = Vec::new();
        let mut output = output;
        // The relay says `+` once connected; before that, only errors.
        loop {
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    if message.is_empty() {
                        continue;
                    }
                    if message[0] != b'+' {
                        return Err(EngineError::Failed(
                            "the port relay answered something unexpected".into(),
                        ));
                    }
                    let rest = message.slice(1..);
                    let stdout = output.filter_map(|item| async move {
                        match item {
                            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                                Some(Ok(message))
                            }
                            Ok(_) => None,
                            Err(e) => Some(Err(std::io::Error::other(e))),
                        }
                    });
                    let stream = futures_util::stream::once(async move { Ok(rest) })
                        .chain(stdout)
                        .boxed();
                    return Ok(Ok(RelayStream {
                        reader: StreamReader::new(stream),
                        writer: input,
                    }));
                }
                Some(Ok(LogOutput::StdErr { message })) => stderr.extend_from_slice(&message),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => {
                    let why = String::from_utf8_lossy(&stderr).trim().to_string();
                    return Ok(Err(if why.is_empty() {
                        format!("the port relay could not reach port {port}")
                    } else {
                        why.trim_start_matches("berth-relay: ").to_string()
                    }));
                }
            }
        }
    }

    /// The TCP ports a running container listens on: from its process's
    /// `/proc/<pid>/net/tcp{,6}` when Berth runs on the engine's host, else
    /// read inside the container by the relay.
    pub async fn listening_ports(
        &self,
        container: &str,
        pid: Option<u32>,
    ) -> Result<Vec<Listener>> {
        // A pid is this host's only when the engine runs here.
        if let Some(pid) = pid.filter(|_| self.host_local) {
            let base = format!("/proc/{pid}/net");
            if let (Ok(v4), v6) = (
                tokio::fs::read_to_string(format!("{base}/tcp")).await,
                tokio::fs::read_to_string(format!("{base}/tcp6")).await,
            ) {
                let mut all = parse_proc_net_tcp(&v4, false);
                all.extend(parse_proc_net_tcp(&v6.unwrap_or_default(), true));
                return Ok(listening_ports(all));
            }
        }
        let (output, _) = self.exec_relay(container, &["ports"], false).await?;
        let text: Vec<u8> = output
            .try_fold(Vec::new(), |mut acc, item| async move {
                if let LogOutput::StdOut { message } | LogOutput::Console { message } = item {
                    acc.extend_from_slice(&message);
                }
                Ok(acc)
            })
            .await?;
        let text = String::from_utf8_lossy(&text);
        let (v4, v6) = text.split_once("\n--\n").unwrap_or((&text, ""));
        let mut all = parse_proc_net_tcp(v4, false);
        all.extend(parse_proc_net_tcp(v6, true));
        Ok(listening_ports(all))
    }

    /// Forgets that the relay was copied into `container` (it was removed).
    pub async fn forget_relay(&self, container: &str) {
        self.relay.copied.lock().await.remove(container);
    }
}

/// Shared by every clone of an [`Engine`].
pub(super) type SharedRelayState = Arc<RelayState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_static_and_packed_executable() {
        // A 64-bit little-endian ELF executable…
        assert_eq!(&RELAY[..6], b"\x7fELF\x02\x01");
        // …with no PT_INTERP program header: no dynamic loader needed.
        let u16_at = |o: usize| u16::from_le_bytes([RELAY[o], RELAY[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(RELAY[0x20..0x28].try_into().unwrap()) as usize;
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        assert!(count > 0);
        let interp = (0..count).any(|i| {
            let at = phoff + i * size;
            u32::from_le_bytes(RELAY[at..at + 4].try_into().unwrap()) == 3
        });
        assert!(!interp, "berth-relay must not need a dynamic loader");
        let tar = relay_tar();
        let mut a = tar::Archive::new(&tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str().unwrap(), ".berth-relay");
        assert_eq!(e.header().mode().unwrap(), 0o755);
        assert_eq!(e.header().size().unwrap(), RELAY.len() as u64);
    }
}
