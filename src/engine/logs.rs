//! Container logs from the engine, demultiplexed: each chunk says whether it
//! came from stdout or stderr, with the engine's 8-byte frame headers gone.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError};

/// Which output a chunk of log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One chunk of log: what one write in the container produced (not
/// necessarily one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: LogStream,
    pub bytes: Bytes,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Last N lines; `None`: all.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i32>,
    pub until: Option<i32>,
    /// Prefix each line with the engine's RFC 3339 (nanosecond) timestamp.
    pub timestamps: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Keep following until the container stops.
    pub follow: bool,
}

impl Engine {
    /// Streams a container's logs. Dropping the stream closes the engine's
    /// connection, so an abandoned follow costs nothing.
    pub fn logs(
        &self,
        id: &str,
        q: &LogQuery,
    ) -> impl Stream<Item = Result<LogChunk, EngineError>> + Send + 'static {
        let mut b = LogsOptionsBuilder::new()
            .follow(q.follow)
            .stdout(q.stdout)
            .stderr(q.stderr)
            .timestamps(q.timestamps)
            .tail(
                &q.tail
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "all".into()),
            );
        if let Some(s) = q.since {
            b = b.since(s);
        }
        if let Some(u) = q.until {
            b = b.until(u);
        }
        self.docker
            .logs(id, Some(b.build()))
            .filter_map(|r| async move {
                match r {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(LogChunk {
                            stream: LogStream::Stdout,
                            bytes: message,
                        }))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(LogChunk {
                        stream: LogStream::Stderr,
                        bytes: message,
                    })),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(EngineError::from(e))),
                }
            })
    }
}
