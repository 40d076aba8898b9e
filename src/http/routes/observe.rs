//! Logs (plain text and Server-Sent Events) and resource statistics (one
//! workspace, its SSE stream, and the whole fleet in one call).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};

use crate::engine::{EngineError, LogChunk, LogQuery, LogStream};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiQuery, Caller, IdPath};
use crate::http::wire::*;
use crate::http::wire::{ok, ResourceStatsDto};
use crate::service::observe::logs::StreamGuard;
use crate::service::observe::stats::view;
use crate::service::Berth;

fn parse_tail(raw: Option<&str>, default: Option<u64>, max: u64) -> Result<Option<u64>, ApiError> {
    match raw {
        None => Ok(default),
        Some("all") => Ok(None),
        Some(n) => match n.parse::<u64>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "tail must be a number from 0 to {max}, or all (got {n:?})"
            ))),
        },
    }
}

fn parse_time(field: &str, v: Option<i64>) -> Result<Option<i32>, ApiError> {
    v.map(|t| {
        i32::try_from(t).ok().filter(|t| *t >= 0).ok_or_else(|| {
            ApiError::bad_request(format!("{field} must be a unix time in seconds (got {t})"))
        })
    })
    .transpose()
}

fn parse_streams(raw: Option<&str>) -> Result<(bool, bool), ApiError> {
    match raw.unwrap_or("all") {
        "all" => Ok((true, true)),
        "stdout" => Ok((true, false)),
        "stderr" => Ok((false, true)),
        other => Err(ApiError::bad_request(format!(
            "stream must be stdout, stderr or all (got {other:?})"
        ))),
    }
}

fn log_query(
    berth: &Berth,
    p: &LogsParams,
    default_tail: Option<u64>,
) -> Result<LogQuery, ApiError> {
    let tail = parse_tail(
        p.tail.as_deref(),
        default_tail,
        berth.core().config().logs.max_tail,
    )?;
    let since = parse_time("since", p.since)?;
    let until = parse_time("until", p.until)?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request("since must not be after until"));
        }
    }
    let (stdout, stderr) = parse_streams(p.stream.as_deref())?;
    Ok(LogQuery {
        tail,
        since,
        until,
        timestamps: p.timestamps.unwrap_or(false),
        stdout,
        stderr,
        follow: false,
    })
}

/// `GET /api/workspaces/:id/logs`: stdout and stderr as plain text, streamed.
pub async fn logs(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(p): ApiQuery<LogsParams>,
) -> ApiResult<Response> {
    let q = log_query(&berth, &p, Some(100))?;
    let logs = berth.observe().workspace_logs(&caller.user, id, q).await?;
    berth.touch(caller.user.id, id).await;
    let cap = berth.core().config().logs.max_bytes;
    let guard = logs.guard;
    let mut sent = 0u64;
    let body = logs
        .stream
        .map(move |r| {
            let _counted = &guard;
            r
        })
        .take_while(move |r| {
            let more = match r {
                Ok(c) => {
                    sent += c.bytes.len() as u64;
                    sent <= cap
                }
                Err(_) => true,
            };
            std::future::ready(more)
        })
        .map(|r| r.map(|c| c.bytes).map_err(std::io::Error::other));
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if p.download.unwrap_or(false) {
        let name = format!("attachment; filename=\"berth-ws-{id}.log\"");
        h.insert(
            CONTENT_DISPOSITION,
            HeaderValue::from_str(&name).expect("ASCII"),
        );
    }
    Ok(resp)
}

type EngineLogs = Pin<Box<dyn Stream<Item = Result<LogChunk, EngineError>> + Send>>;

/// Drives the engine's follow stream from a task of its own, so the engine
/// connection opens now (not when the client first reads) and closes as soon
/// as the client goes away, even while no line is coming.
fn pump(mut engine: EngineLogs, guard: StreamGuard) -> EngineLogs {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let _guard = guard;
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                item = engine.next() => match item {
                    Some(item) => {
                        if tx.send(item).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    Box::pin(tokio_stream_from(rx))
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// State of one SSE log stream: lines are cut from the engine's chunks
/// (a chunk is one write, not one line), one event per line.
struct LineEvents {
    engine: EngineLogs,
    partial: [Vec<u8>; 2],
    pending: VecDeque<Event>,
    /// Lines at or before this instant were sent before a reconnect.
    resume_after: Option<chrono::DateTime<chrono::FixedOffset>>,
    show_timestamps: bool,
    done: bool,
}

impl LineEvents {
    fn push_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r').replace('\r', "");
        // The engine was asked for timestamps: "<RFC 3339 nanos> <line>".
        let (ts, msg) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let parsed = chrono::DateTime::parse_from_rfc3339(ts).ok();
        if let (Some(after), Some(t)) = (self.resume_after, parsed) {
            if t <= after {
                return;
            }
        }
        let data = if self.show_timestamps {
            text.clone()
        } else {
            msg.to_string()
        };
        let mut ev = Event::default().data(data);
        if parsed.is_some() {
            ev = ev.id(ts);
        }
        self.pending.push_back(ev);
    }

    fn take_chunk(&mut self, c: LogChunk) {
        let slot = match c.stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        };
        self.partial[slot].extend_from_slice(&c.bytes);
        while let Some(pos) = self.partial[slot].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[slot].drain(..=pos).collect();
            self.push_line(&line[..line.len() - 1]);
        }
    }

    fn finish(&mut self) {
        for slot in 0..2 {
            let rest = std::mem::take(&mut self.partial[slot]);
            if !rest.is_empty() {
                self.push_line(&rest);
            }
        }
        self.pending
            .push_back(Event::default().event("end").data("the container stopped"));
        self.done = true;
    }
}

/// `GET /api/workspaces/:id/logs/stream`: Server-Sent Events, one per line,
/// with the line's timestamp as event id so a reconnecting `EventSource`
/// resumes where it left off (`Last-Event-ID`).
pub async fn log_stream(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<LogStreamParams>,
) -> ApiResult<Response> {
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.trim()).ok());
    let default_tail = if resume_after.is_some() {
        None
    } else {
        Some(100)
    };
    let tail = parse_tail(
        p.tail.as_deref(),
        default_tail,
        berth.core().config().logs.max_tail,
    )?;
    let mut since = parse_time("since", p.since)?;
    if let Some(t) = resume_after {
        since = i32::try_from(t.timestamp()).ok();
    }
    let (stdout, stderr) = parse_streams(p.stream.as_deref())?;
    let q = LogQuery {
        tail,
        since,
        until: None,
        timestamps: true,
        stdout,
        stderr,
        follow: true,
    };
    let logs = berth.observe().workspace_logs(&caller.user, id, q).await?;
    berth.touch(caller.user.id, id).await;
    let state = LineEvents {
        engine: pump(Box::pin(logs.stream), logs.guard),
        partial: [Vec::new(), Vec::new()],
        pending: VecDeque::new(),
        resume_after,
        show_timestamps: p.timestamps.unwrap_or(false),
        done: false,
    };
    let this = berth.clone();
    let events = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), st));
            }
            if st.done {
                return None;
            }
            match st.engine.next().await {
                Some(Ok(chunk)) => st.take_chunk(chunk),
                Some(Err(e)) => {
                    st.pending
                        .push_back(Event::default().event("error").data(e.to_string()));
                    st.done = true;
                }
                None => st.finish(),
            }
        }
    });
    Ok(sse(&this, events))
}

/// An event stream that also ends — with `event: end` saying why — when
/// the server shuts down, so shutdown never waits on a follower.
fn sse(
    berth: &Berth,
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let stop = berth.core().shutdown_token().cancelled_owned();
    let events = futures_util::stream::unfold(
        (Box::pin(events), Box::pin(stop), false),
        |(mut events, mut stop, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                _ = &mut stop => Some((
                    Ok(Event::default().event("end").data("the server is shutting down")),
                    (events, stop, true),
                )),
                item = events.next() => item.map(|i| (i, (events, stop, false))),
            }
        },
    );
    let mut resp = Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response();
    // Tell buffering proxies (nginx) to pass events through at once.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// `GET /api/workspaces/:id/stats` (and `/container-stats`).
pub async fn stats(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let (v, history) = berth.observe().resource_stats(&caller.user, id).await?;
    berth.touch(caller.user.id, id).await;
    Ok(ok(ResourceStatsDto::new(&v, Some(&history))))
}

/// `GET /api/workspaces/:id/stats/stream`: the same figures every N seconds.
pub async fn stats_stream(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(p): ApiQuery<StatsStreamParams>,
) -> ApiResult<Response> {
    let every = p.interval.unwrap_or(2);
    if !(1..=60).contains(&every) {
        return Err(ApiError::bad_request(format!(
            "interval must be 1 to 60 seconds (got {every})"
        )));
    }
    // Checks ownership and that it runs, and gives the first figures.
    let (first, _) = berth.observe().resource_stats(&caller.user, id).await?;
    berth.touch(caller.user.id, id).await;
    let cid = first.container_id.clone();
    let ws = berth.core().workspace(&caller.user, id).await?;
    let engine = berth.core().engine_of(&ws).await?;
    let pid = engine
        .inspect_container(&cid)
        .await
        .map_err(crate::service::ServiceError::from)?
        .and_then(|c| c.pid);
    struct St {
        engine: crate::engine::Engine,
        cid: String,
        pid: Option<u32>,
        ws: uuid::Uuid,
        prev: Option<crate::engine::ResourceSample>,
        first: Option<Event>,
        tick: tokio::time::Interval,
        done: bool,
        _guard: StreamGuard,
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    let this = berth.clone();
    let st = St {
        _guard: berth.observe().stream_guard(),
        engine,
        cid,
        pid,
        ws: id,
        prev: None,
        first: Some(json_event(&ResourceStatsDto::new(&first, None))),
        tick,
        done: false,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(ev) = st.first.take() {
            return Some((Ok::<Event, Infallible>(ev), st));
        }
        if st.done {
            return None;
        }
        st.tick.tick().await;
        match st.engine.sample_resources(&st.cid, st.pid).await {
            Ok(Some(now)) => {
                let cpu = st
                    .prev
                    .as_ref()
                    .and_then(|p| crate::engine::cpu_percent(p, &now))
                    .map(|c| (c * 100.0).round() / 100.0);
                let v = view(st.ws, &st.cid, cpu, &now);
                st.prev = Some(now);
                Some((Ok(json_event(&ResourceStatsDto::new(&v, None))), st))
            }
            Ok(None) => {
                st.done = true;
                Some((
                    Ok(Event::default().event("end").data("the container stopped")),
                    st,
                ))
            }
            Err(e) => {
                st.done = true;
                Some((Ok(Event::default().event("error").data(e.to_string())), st))
            }
        }
    });
    Ok(sse(&this, events))
}

fn json_event<T: serde::Serialize>(v: &T) -> Event {
    Event::default().data(serde_json::to_string(v).unwrap_or_default())
}

/// `GET /api/workspaces/stats/live`: every running workspace of the caller.
pub async fn fleet(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    let all = berth.observe().fleet_stats(&caller.user).await?;
    Ok(ok(all
        .iter()
        .map(|v| ResourceStatsDto::new(v, None))
        .collect::<Vec<_>>()))
}

/// `GET /api/workspaces/live`: Server-Sent Events, one `data:` per change of
/// a workspace's status or health (all of them first), for the caller's
/// workspaces (everyone's, for an admin). Status comes from the records
/// (looked at every 2 s); health is asked of the engine when its event
/// stream says something changed, not on every tick.
pub async fn live(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    use std::collections::{HashMap, HashSet};
    let rx = berth.subscribe_changes();
    struct St {
        berth: Berth,
        user: crate::domain::User,
        rx: tokio::sync::broadcast::Receiver<uuid::Uuid>,
        sent: HashMap<uuid::Uuid, LiveState>,
        health: HashMap<uuid::Uuid, crate::domain::Health>,
        pending: VecDeque<Event>,
        dirty: HashSet<uuid::Uuid>,
        first: bool,
        _guard: StreamGuard,
    }
    let st = St {
        _guard: berth.observe().stream_guard(),
        berth: berth.clone(),
        user: caller.user,
        rx,
        sent: HashMap::new(),
        health: HashMap::new(),
        pending: VecDeque::new(),
        dirty: HashSet::new(),
        first: true,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), st));
            }
            if !st.first {
                // Wait for the engine to say something, or for the next look.
                let tick = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(tick);
                loop {
                    tokio::select! {
                        _ = &mut tick => break,
                        got = st.rx.recv() => match got {
                            Ok(id) => { st.dirty.insert(id); }
                            // Missed some: look at every health again.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                st.health.clear();
                                break;
                            }
                            Err(_) => break,
                        },
                    }
                }
            }
            st.first = false;
            let list = match st.berth.workspaces(&st.user).await {
                Ok(l) => l,
                Err(e) => {
                    return Some((Ok(Event::default().event("error").data(e.to_string())), st))
                }
            };
            let now: HashSet<uuid::Uuid> = list.iter().map(|w| w.id).collect();
            st.sent.retain(|id, _| now.contains(id));
            for w in &list {
                let status_changed = st.sent.get(&w.id).is_none_or(|s| s.status != w.status);
                if status_changed || st.dirty.contains(&w.id) || !st.health.contains_key(&w.id) {
                    let h = match st.berth.workspace_status(&st.user, w.id).await {
                        Ok(r) => r.health_summary().status,
                        Err(_) => crate::domain::Health::NoContainer,
                    };
                    st.health.insert(w.id, h);
                }
                let state = LiveState {
                    id: w.id,
                    status: w.status,
                    status_reason: w.status_reason.clone(),
                    health: st
                        .health
                        .get(&w.id)
                        .copied()
                        .unwrap_or(crate::domain::Health::NoContainer),
                };
                if st.sent.get(&w.id) != Some(&state) {
                    st.pending.push_back(json_event(&state));
                    st.sent.insert(w.id, state);
                }
            }
            st.dirty.clear();
        }
    });
    Ok(sse(&berth, events))
}
