//! The layering rules of ARCHITECTURE.md's "Invariants", checked on the
//! source tree: who may import which crate, and that the domain does no
//! I/O. Needs neither an engine nor a database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file under `src/` with its path relative to `src/`.
fn tree() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Files outside `allowed` (path prefixes) that mention any of `needles`.
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    tree()
        .into_iter()
        .filter(|(rel, _)| !allowed.iter().any(|a| rel.starts_with(a)))
        .filter(|(_, text)| needles.iter().any(|n| text.contains(n)))
        .map(|(rel, _)| rel)
        .collect()
}

#[test]
fn only_the_engine_adapter_talks_to_docker() {
    assert_eq!(offenders(&["bollard"], &["engine/"]), Vec::<String>::new());
}

#[test]
fn only_the_store_writes_sql() {
    assert_eq!(
        offenders(&["sqlx::", "use sqlx"], &["store/"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_remote_talks_to_object_storage() {
    assert_eq!(
        offenders(&["object_store"], &["remote.rs"]),
        Vec::<String>::new()
    );
}

#[test]
fn the_domain_and_its_planners_do_no_io() {
    let io = [
        "std::fs",
        "tokio::",
        "sqlx",
        "bollard",
        "reqwest",
        "hyper::",
        "std::net::TcpStream",
        "std::process",
        "axum::",
    ];
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("domain/"))
        .filter(|(_, text)| io.iter().any(|n| text.contains(n)))
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

/// A file's text before its unit tests (which build fixtures by path).
fn before_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

#[test]
fn a_volume_is_walked_by_descriptor_only() {
    // A volume's content is hostile (ARCHITECTURE.md): the code that reads
    // or writes a volume's directory goes through `backup::beneath`, never
    // by path, and never hands a volume to another program by path.
    let by_path = [
        "std::fs",
        "tokio::fs",
        "File::open",
        "File::create",
        "OpenOptions",
        "fs::read_dir",
        "symlink_metadata",
        "fs::read_link",
        "filetime",
        "lchown",
        "unpack_in(",
        "append_path",
        "Command::new",
    ];
    let volume_code = ["backup/volume.rs", "service/volumes/"];
    let files = tree();
    // Each still names code (a rename must not leave the check empty).
    for place in volume_code {
        assert!(
            files.iter().any(|(rel, _)| rel.starts_with(place)),
            "{place} is gone: name where the volume code went"
        );
    }
    let found: Vec<String> = files
        .into_iter()
        .filter(|(rel, _)| volume_code.iter().any(|p| rel.starts_with(p)))
        .flat_map(|(rel, text)| {
            by_path
                .iter()
                .filter(|n| before_tests(&text).contains(*n))
                .map(|n| format!("{rel}: {n}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, Vec::<String>::new());
    // And the descriptor calls themselves live in one file.
    assert_eq!(
        offenders(
            &[
                "rustix::fs::openat",
                "rustix::fs::mkdirat",
                "rustix::fs::linkat"
            ],
            &["backup/beneath.rs"]
        ),
        Vec::<String>::new()
    );
}

#[test]
fn the_http_layer_reaches_the_engine_and_the_store_only_through_services() {
    // Two handlers still sample or inspect a container themselves (the
    // stats stream, the proxy's exit grace); listed so that a new one is a
    // decision, not a slip.
    let calls = [
        "berth.core().local_engine()",
        "berth.core().engine_of(",
        "berth.core().engine_on(",
        "berth.core().store()",
    ];
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("http/"))
        .filter(|(rel, _)| rel != "http/routes/observe.rs" && rel != "http/routes/proxy.rs")
        .filter(|(_, text)| calls.iter().any(|c| text.contains(c)))
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

/// Answers are made from domain and service types: no HTTP file names a
/// store row or an engine type, but the one place errors become answers
/// (which maps the engine's) and the stats and log streams (listed above).
#[test]
fn the_http_layer_names_no_store_or_engine_type() {
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("http/"))
        .filter(|(rel, _)| rel != "http/error.rs" && rel != "http/routes/observe.rs")
        .filter(|(_, text)| {
            ["crate::store", "crate::engine"]
                .iter()
                .any(|n| before_tests(text).contains(n))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn only_the_transition_function_writes_a_workspace_state() {
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel != "domain/transition.rs")
        .filter(|(_, text)| {
            [
                "ws.status = ",
                "w.status = ",
                ".status_reason = ",
                ".container_id = ",
                ".host_port = ",
                "ws.node = ",
                "w.node = ",
                ".last_activity_at = ",
            ]
            .iter()
            .any(|n| text.contains(n))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

/// A status is saved, and an event recorded, by `Core::steps` alone:
/// the step and the event that says why land in one transaction, and no
/// caller can record one without the other.
#[test]
fn only_the_core_saves_a_state_or_records_an_event() {
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel != "service/core.rs" && !rel.starts_with("store/"))
        .filter(|(_, text)| {
            [".save_status(", ".insert_event(", ".insert_event_once("]
                .iter()
                .any(|n| before_tests(text).contains(n))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_http_layer_keeps_its_wire_types_in_one_home() {
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("http/"))
        .filter(|(rel, _)| !rel.starts_with("http/wire/") && rel != "http/error.rs")
        .filter(|(_, text)| {
            text.lines().any(|l| {
                l.trim_start().starts_with("#[derive(")
                    && (l.contains("Serialize") || l.contains("Deserialize"))
            })
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_cli_client_reads_answers_as_wire_types() {
    // `v["name"]` compiles whatever the server calls the field; a wire
    // type does not.
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("cli/client/"))
        .flat_map(|(rel, text)| {
            text.lines()
                .filter(|l| l.contains("[\"") && !l.contains("&[\"") && !l.contains("= [\""))
                .map(|l| format!("{rel}: {}", l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

/// Each service type and where its `impl` blocks may be: its own file or
/// folder under `src/`.
const SERVICES: [(&str, &[&str]); 16] = [
    ("Berth", &["service/workspaces/"]),
    ("Core", &["service/core.rs"]),
    ("Types", &["service/types/"]),
    ("Quotas", &["service/quotas.rs"]),
    ("Placement", &["service/placement.rs"]),
    ("View", &["service/view.rs"]),
    ("Observe", &["service/observe/"]),
    ("Apps", &["service/apps/"]),
    ("Projects", &["service/projects.rs"]),
    ("Repos", &["service/repos.rs"]),
    ("Volumes", &["service/volumes/"]),
    ("Backups", &["service/backups/"]),
    ("Accounts", &["service/accounts.rs", "service/auth.rs"]),
    ("Nodes", &["service/nodes.rs"]),
    ("Replicas", &["service/replicas.rs"]),
    ("Scheduler", &["jobs/"]),
];

/// The methods of each `impl NAME {` block (not trait impls) in `text`,
/// before its tests: their names.
fn methods_of(text: &str, name: &str) -> Vec<String> {
    let text = before_tests(text);
    let mut found = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("impl") && line.ends_with('{') {
            let head = line.trim_end_matches('{').trim();
            let ty = head.rsplit([' ', ':']).next().unwrap_or("");
            inside = !head.contains(" for ") && (ty == name || ty.starts_with(&format!("{name}<")));
            continue;
        }
        if line == "}" {
            inside = false;
            continue;
        }
        if !inside {
            continue;
        }
        let Some(rest) = line.strip_prefix("    ") else {
            continue;
        };
        let rest = match rest.strip_prefix("pub") {
            Some(r) if r.starts_with('(') => r.split_once(") ").map_or(r, |(_, r)| r),
            Some(r) => r.trim_start(),
            None => rest,
        };
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        if let Some(f) = rest.strip_prefix("fn ") {
            let n: String = f
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(n);
        }
    }
    found
}

#[test]
fn each_service_is_written_in_its_own_files() {
    // No module adds methods to another's service: Backups is not extended
    // by the workspace files, nor Berth by the jobs.
    let mut found = Vec::new();
    for (rel, text) in tree() {
        for (name, homes) in SERVICES {
            let here = !methods_of(&text, name).is_empty()
                || text.lines().any(|l| l == format!("impl {name} {{"));
            if here && !homes.iter().any(|h| rel.starts_with(h)) {
                found.push(format!("{rel}: impl {name}"));
            }
        }
    }
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn no_service_holds_more_than_sixty_methods() {
    // Berth had 142 before it was split (issue 29): past sixty, a service
    // holds two things, and the second wants a type of its own.
    let files = tree();
    let over: Vec<String> = SERVICES
        .iter()
        .filter_map(|(name, _)| {
            let n: usize = files.iter().map(|(_, t)| methods_of(t, name).len()).sum();
            (n > 60).then(|| format!("{name}: {n} methods"))
        })
        .collect();
    assert_eq!(over, Vec::<String>::new());
}

/// Pairs of service files whose methods call each other both ways. A
/// method counts by its name when that name is defined once in the whole
/// tree (so `store.workspaces()` is not taken for a service's own).
fn both_way_calls(files: &[(String, String)]) -> Vec<String> {
    let mut home: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, text) in files {
        for (name, homes) in SERVICES {
            if homes.iter().any(|h| rel.starts_with(h)) {
                for m in methods_of(text, name) {
                    home.entry(m).or_default().push(rel.clone());
                }
            }
        }
    }
    let mut defined: BTreeMap<String, usize> = BTreeMap::new();
    for (_, text) in files {
        for part in before_tests(text).split("fn ").skip(1) {
            let n: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            *defined.entry(n).or_default() += 1;
        }
    }
    let mut calls: BTreeSet<(String, String)> = BTreeSet::new();
    for (rel, text) in files {
        if !SERVICES
            .iter()
            .any(|(_, h)| h.iter().any(|h| rel.starts_with(h)))
        {
            continue;
        }
        for part in before_tests(text).split('.').skip(1) {
            let n: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !part[n.len()..].starts_with('(') || defined.get(&n) != Some(&1) {
                continue;
            }
            if let Some([to]) = home.get(&n).map(Vec::as_slice) {
                if to != rel {
                    calls.insert((rel.clone(), to.clone()));
                }
            }
        }
    }
    calls
        .iter()
        .filter(|(a, b)| a < b && calls.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{a} <-> {b}"))
        .collect()
}

#[test]
fn no_two_service_files_call_each_other_both_ways() {
    assert_eq!(both_way_calls(&tree()), Vec::<String>::new());
}

#[test]
fn the_both_way_check_finds_a_pair() {
    let files = vec![
        (
            "service/workspaces/lifecycle.rs".to_string(),
            "impl Berth {\n    pub async fn start_it(&self) {\n        self.refresh_it();\n    }\n}\n"
                .to_string(),
        ),
        (
            "service/workspaces/reconcile.rs".to_string(),
            "impl Berth {\n    fn refresh_it(&self) {\n        self.start_it();\n    }\n}\n"
                .to_string(),
        ),
    ];
    assert_eq!(
        both_way_calls(&files),
        vec!["service/workspaces/lifecycle.rs <-> service/workspaces/reconcile.rs".to_string()]
    );
}

/// The top-level module a source file (relative to `src/`) belongs to:
/// `service/nodes.rs` is `service`, `metrics.rs` is `metrics`; the crate
/// roots and the helper binaries are none.
fn top_module(rel: &str) -> Option<String> {
    let first = rel.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "main" | "lib" | "bin")).then(|| name.to_string())
}

/// The top-level modules a file's code names: `use crate::x…`,
/// `use crate::{x, y::z}` and inline paths `crate::x::…` (its unit tests
/// left out).
fn modules_named(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at the group's top level: what follows `{` or a `,`
            // at depth 0.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        out.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Every top-level module with the ones it names, and which files name
/// each.
type ModuleGraph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn module_graph(files: &[(String, String)]) -> ModuleGraph {
    let tops: BTreeSet<String> = files.iter().filter_map(|(r, _)| top_module(r)).collect();
    let mut g = ModuleGraph::new();
    for (rel, text) in files {
        let Some(from) = top_module(rel) else {
            continue;
        };
        let entry = g.entry(from.clone()).or_default();
        for to in modules_named(text) {
            if to != from && tops.contains(&to) {
                entry.entry(to).or_default().insert(rel.clone());
            }
        }
    }
    g
}

/// The cycles of the graph, each as its modules in order with the files
/// that make each step.
fn cycles(g: &ModuleGraph) -> Vec<String> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for next in g.get(&m).map(|e| e.keys()).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut out = Vec::new();
    for (a, edges) in g {
        for (b, files) in edges {
            // An edge a -> b on a cycle: b reaches a again.
            if reach(b).contains(a) {
                out.push(format!(
                    "{a} -> {b} (in {files:?}), and {b} reaches {a} again"
                ));
            }
        }
    }
    out
}

#[test]
fn no_cycles_between_top_level_modules() {
    let g = module_graph(&tree());
    assert!(g.len() >= 10, "the graph was read: {g:?}");
    assert_eq!(cycles(&g), Vec::<String>::new());
}

#[test]
fn the_cycle_check_finds_a_cycle_and_reads_every_form_of_path() {
    let file = |rel: &str, text: &str| (rel.to_string(), text.to_string());
    // metrics -> jobs -> service -> metrics, written three ways.
    let planted = [
        file(
            "metrics.rs",
            "fn f() { for j in crate::jobs::JobName::ALL {} }",
        ),
        file(
            "jobs/mod.rs",
            "use crate::{\n    domain::x,\n    service::{Berth, Result},\n};",
        ),
        file("service/mod.rs", "use crate::metrics;"),
        file("domain/mod.rs", "pub fn pure() {}"),
        file("lib.rs", "pub mod jobs; use crate::jobs::x;"),
    ];
    let g = module_graph(&planted);
    assert_eq!(
        g["jobs"].keys().cloned().collect::<Vec<_>>(),
        ["domain", "service"]
    );
    let found = cycles(&g);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("jobs -> service"), "{found:?}");
    // Without the planted edge, none.
    let g = module_graph(&planted[1..]);
    assert_eq!(cycles(&g), Vec::<String>::new());
}

#[test]
fn the_loops_are_started_in_one_place() {
    // `App::start_loops` starts every background loop, for `berth serve`
    // and the tests' harness alike; nothing else in the tree spawns one.
    let starts = [
        ".spawn_watcher()",
        ".spawn_sampler()",
        ".spawn_heartbeat(",
        ".spawn_reaper(",
        ".spawn_follower()",
        "scheduler.spawn(",
    ];
    let found: Vec<String> = tree()
        .into_iter()
        .filter(|(rel, _)| rel != "app.rs")
        .flat_map(|(rel, text)| {
            let text = before_tests(&text).to_string();
            starts
                .iter()
                .filter(|s| text.contains(*s))
                .map(|s| format!("{rel}: {s}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, Vec::<String>::new());
}
