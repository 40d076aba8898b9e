//! Pulling a type's image from a registry: how the engine's progress
//! messages add up to what a person sees (layers, bytes, done or failed).
//! Pure; `service::images` feeds it and keeps one per image.

use std::collections::BTreeMap;

/// One message of the engine's pull stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullEvent {
    /// The layer it is about; none for the image as a whole.
    pub layer: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// One layer as far as it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub status: String,
    pub current: u64,
    pub total: Option<u64>,
    pub done: bool,
}

super::spelled_enum! {
    /// Where a pull stands.
    pub enum PullState("pull state") {
        Pulling = "pulling",
        Done = "done",
        Failed = "failed",
    }
}

/// A pull's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub image: String,
    pub state: PullState,
    pub layers: BTreeMap<String, Layer>,
    /// The last word about the image as a whole ("Digest: …", "Status: …").
    pub status: String,
    pub error: Option<String>,
    pub started_at: super::Millis,
    pub finished_at: Option<super::Millis>,
}

impl PullProgress {
    pub fn new(image: &str, now: super::Millis) -> PullProgress {
        PullProgress {
            image: image.to_string(),
            state: PullState::Pulling,
            layers: BTreeMap::new(),
            status: "starting".into(),
            error: None,
            started_at: now,
            finished_at: None,
        }
    }

    /// Takes one message of the engine's stream into account.
    pub fn apply(&mut self, e: &PullEvent) {
        let Some(id) = &e.layer else {
            self.status = e.status.clone();
            return;
        };
        // "Pulling from library/x" names the repository, not a layer.
        if e.status.starts_with("Pulling from") {
            self.status = e.status.clone();
            return;
        }
        let l = self.layers.entry(id.clone()).or_default();
        l.status = e.status.clone();
        let s = e.status.as_str();
        if s == "Download complete" || s == "Pull complete" || s == "Already exists" {
            l.done = true;
            if let Some(t) = l.total {
                l.current = t;
            }
        } else if s == "Downloading" {
            if let Some(c) = e.current {
                l.current = c;
            }
            if e.total.is_some() {
                l.total = e.total;
            }
        }
    }

    pub fn finish(&mut self, error: Option<String>, now: super::Millis) {
        self.finished_at = Some(now);
        match error {
            Some(e) => {
                self.state = PullState::Failed;
                self.error = Some(e);
            }
            None => {
                self.state = PullState::Done;
                for l in self.layers.values_mut() {
                    l.done = true;
                }
            }
        }
    }

    /// Bytes downloaded so far, and of how many known.
    pub fn bytes(&self) -> (u64, u64) {
        self.layers.values().fold((0, 0), |(c, t), l| {
            (c + l.current, t + l.total.unwrap_or(l.current))
        })
    }
}

/// The registry an image reference names (`host[:port]` before the first
/// `/` when it looks like one), `docker.io` otherwise — what credentials
/// are looked up by.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// An image reference split into name and tag (`latest` when none; a
/// digest stays with the name).
pub fn name_and_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    // A colon after the last slash is a tag; before it, a registry port.
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        layer: Option<&str>,
        status: &str,
        current: Option<u64>,
        total: Option<u64>,
    ) -> PullEvent {
        PullEvent {
            layer: layer.map(String::from),
            status: status.into(),
            current,
            total,
        }
    }

    #[test]
    fn progress_adds_up_per_layer() {
        let mut p = PullProgress::new("r:5000/x:1", 0);
        p.apply(&ev(Some("v1"), "Pulling from x", None, None));
        assert!(p.layers.is_empty());
        p.apply(&ev(Some("a"), "Pulling fs layer", None, None));
        p.apply(&ev(Some("b"), "Already exists", None, None));
        p.apply(&ev(Some("a"), "Downloading", Some(100), Some(1000)));
        assert_eq!(p.bytes(), (100, 1000));
        p.apply(&ev(Some("a"), "Downloading", Some(600), Some(1000)));
        p.apply(&ev(Some("a"), "Download complete", None, None));
        assert_eq!(p.bytes(), (1000, 1000));
        assert!(p.layers["a"].done && p.layers["b"].done);
        p.apply(&ev(None, "Digest: sha256:abc", None, None));
        assert_eq!(p.status, "Digest: sha256:abc");
        p.finish(None, 5);
        assert_eq!(p.state, PullState::Done);
        let mut f = PullProgress::new("x", 0);
        f.finish(Some("no registry answered".into()), 1);
        assert_eq!(f.state, PullState::Failed);
        assert_eq!(f.error.as_deref(), Some("no registry answered"));
    }

    #[test]
    fn references_name_their_registry_and_tag() {
        assert_eq!(registry_of("127.0.0.1:5000/berth/x:1"), "127.0.0.1:5000");
        assert_eq!(
            registry_of("registry.example.com/a/b"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("codercom/code-server:latest"), "docker.io");
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(
            name_and_tag("127.0.0.1:5000/berth/x:1"),
            ("127.0.0.1:5000/berth/x", "1")
        );
        assert_eq!(
            name_and_tag("127.0.0.1:5000/berth/x"),
            ("127.0.0.1:5000/berth/x", "latest")
        );
        assert_eq!(name_and_tag("busybox"), ("busybox", "latest"));
        assert_eq!(name_and_tag("a/b@sha256:00"), ("a/b@sha256:00", ""));
    }
}
