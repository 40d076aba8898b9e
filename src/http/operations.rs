//! The route table: every operation of the API, with its handler, its
//! description and who may call it. The router (`http::app`) and the
//! OpenAPI document (`openapi::document`) are both built from it.

use super::openapi::{self, Op};
use super::routes::{
    apps, audit as audit_routes, auth, backups, jobs, nodes, observe, projects, proxy, quotas,
    replicas, users, volumes, workspaces as ws,
};
use super::*;

/// The whole API, in one list: each entry is a route and its description.
/// The router ([`app`]) and the OpenAPI document ([`openapi::document`]) are
/// both built from this list and nothing else.
pub fn operations() -> Vec<Op> {
    use crate::domain::audit::ResourceKind;
    use crate::domain::ResourceOverrides;
    use wire::*;
    const SSE: &[&str] = &["text/event-stream"];
    openapi::expand_aliases(vec![
        // ---- service ----
        Op::get("/healthz", "healthz", healthz)
            .public()
            .tag("service")
            .summary("Liveness: the process answers")
            .ok::<HealthzDto>(),
        Op::get("/metrics", "metrics", routes::metrics::render)
            .metrics_auth()
            .tag("service")
            .summary("Prometheus metrics (text exposition format)")
            .raw(&["text/plain; version=0.0.4; charset=utf-8"], "Metrics in the Prometheus text format."),
        Op::get("/api/openapi.json", "openapi", openapi::serve_document)
            .public()
            .tag("service")
            .summary("This document (OpenAPI 3.1)")
            .raw(&["application/json"], "The OpenAPI 3.1 description of the API."),
        // ---- web UI ----
        Op::get("/", "ui", routes::ui::index)
            .public()
            .tag("ui")
            .summary("The web UI (log in, workspaces, logs, stats, projects, backups)")
            .raw(&["text/html; charset=utf-8"], "The UI's page."),
        Op::get("/ui/app.js", "uiScript", routes::ui::script)
            .public()
            .tag("ui")
            .summary("The web UI's script")
            .raw(&["text/javascript; charset=utf-8"], "JavaScript."),
        Op::get("/ui/app.css", "uiStyle", routes::ui::style)
            .public()
            .tag("ui")
            .summary("The web UI's style sheet")
            .raw(&["text/css; charset=utf-8"], "CSS."),
        Op::get("/ui/favicon.svg", "uiIcon", routes::ui::icon)
            .public()
            .tag("ui")
            .summary("The web UI's icon")
            .raw(&["image/svg+xml"], "SVG."),
        // Browsers ask for it on every page of the origin, proxied
        // workspaces' pages included.
        Op::get("/favicon.ico", "favicon", routes::ui::icon)
            .public()
            .tag("ui")
            .summary("The icon, where browsers look for it")
            .raw(&["image/svg+xml"], "SVG."),
        // ---- auth ----
        Op::post("/api/auth/login", "login", auth::login)
            .public()
            .tag("auth")
            .summary("Log in with email and password")
            .describe("Answers a bearer token and sets the session cookie. After too many failed attempts for an account or from an address (`auth.login_*`), 429 with `Retry-After`, known and unknown emails alike.")
            .json::<LoginRequest>()
            .ok::<LoginResponse>()
            .errors(&[401, 429]),
        Op::post("/api/auth/logout", "logout", auth::logout)
            .tag("auth")
            .summary("Revoke the token (or session) used for this request")
            .ok::<LoggedOutDto>(),
        Op::get("/api/auth/me", "me", auth::me)
            .tag("auth")
            .summary("The signed-in user")
            .ok::<UserDto>(),
        Op::get("/api/auth/me/quota", "myQuota", quotas::mine)
            .tag("quotas")
            .summary("Your quota: each limit and what you use against it")
            .describe("Limits come from your role (`quotas.member`, `quotas.admin`) unless an admin set yours (`source`); `null` is no limit. Running workspaces count (running or starting) with their CPU limits and memory reservations (else limits); storage is your project volumes as last measured (`measuredAt`: approximate between measurements) and your backups.")
            .ok::<QuotaDto>(),
        Op::post("/api/auth/password", "changePassword", auth::change_password)
            .tag("auth")
            .summary("Change your password")
            .describe("Needs the current password. Ends your other login sessions; API tokens stay.")
            .json::<ChangePasswordRequest>()
            .ok::<PasswordChangedDto>(),
        Op::get("/api/auth/tokens", "listTokens", auth::tokens)
            .tag("auth")
            .summary("Your tokens: API tokens and login sessions (never the secrets)")
            .ok::<Vec<TokenDto>>(),
        Op::post("/api/auth/tokens", "createToken", auth::create_token)
            .creates(ResourceKind::Token)
            .tag("auth")
            .summary("Make an API token for scripts")
            .describe("The token is in the answer, and only there. It does not expire; revoke it when done.")
            .json::<CreateTokenRequest>()
            .created::<CreatedTokenDto>(),
        Op::delete("/api/auth/tokens/{id}", "revokeToken", auth::revoke_token)
            .acts_on(ResourceKind::Token, "id")
            .tag("auth")
            .summary("Revoke one of your tokens or sessions")
            .describe("Not the one the request is made with (409): that is `POST /api/auth/logout`.")
            .ok::<DeletedDto>()
            .errors(&[409]),
        Op::get("/api/auth/me/git-credentials", "listGitCredentials", auth::git_credentials)
            .tag("auth")
            .summary("Your stored git credentials (never their tokens)")
            .ok::<Vec<GitCredentialDto>>(),
        Op::post("/api/auth/me/git-credentials", "addGitCredential", auth::add_git_credential)
            .creates(ResourceKind::GitCredential)
            .tag("auth")
            .summary("Store a token for one git host")
            .describe("Sent by HTTP basic authentication to that host alone, when it asks, while Berth clones a project from it (`POST /api/projects` with `git`); never written into the clone, a log, an answer or the audit log. One per host (409).")
            .json::<GitCredentialRequest>()
            .created::<GitCredentialDto>()
            .errors(&[409]),
        Op::delete("/api/auth/me/git-credentials/{id}", "removeGitCredential", auth::remove_git_credential)
            .acts_on(ResourceKind::GitCredential, "id")
            .tag("auth")
            .summary("Remove one of your git credentials")
            .ok::<DeletedDto>(),
        // ---- users (admins) ----
        Op::get("/api/users", "listUsers", users::list)
            .tag("users")
            .admin()
            .summary("Every user, with how many projects and workspaces they own")
            .query::<PageQuery>()
            .ok::<Vec<AccountDto>>(),
        Op::post("/api/users", "createUser", users::create)
            .creates(ResourceKind::User)
            .tag("users")
            .admin()
            .summary("Add a user")
            .json::<CreateUserRequest>()
            .created::<AccountDto>()
            .errors(&[409]),
        Op::get("/api/users/{id}", "getUser", users::get)
            .tag("users")
            .admin()
            .summary("One user")
            .ok::<AccountDto>(),
        Op::patch("/api/users/{id}", "updateUser", users::update)
            .acts_on(ResourceKind::User, "id")
            .tag("users")
            .admin()
            .summary("Change a user's role or reset their password")
            .describe("A new password ends the user's login sessions. The last admin cannot become a member (409).")
            .json::<UpdateUserRequest>()
            .ok::<AccountDto>()
            .errors(&[409]),
        Op::get("/api/users/{id}/quota", "userQuota", quotas::of_user)
            .tag("quotas")
            .admin()
            .summary("A user's quota and usage")
            .ok::<QuotaDto>(),
        Op::put("/api/users/{id}/quota", "setUserQuota", quotas::set)
            .acts_on(ResourceKind::User, "id")
            .tag("quotas")
            .admin()
            .summary("Set a user's limits over their role's defaults")
            .describe("Each limit a number, `\"unlimited\"`, or left out for the role's default; replaces what was set before. What the user already uses stays; it counts against the new limits from their next action on.")
            .json::<SetQuotaRequest>()
            .ok::<QuotaDto>(),
        Op::get("/api/quotas", "listQuotas", quotas::all)
            .tag("quotas")
            .admin()
            .summary("Every user's quota and usage")
            .ok::<Vec<QuotaDto>>(),
        Op::get("/api/audit", "auditLog", audit_routes::log)
            .tag("audit")
            .admin()
            .summary("Who did what, when: the audit log, newest first, by pages")
            .describe("Every state-changing call of this API (every method but GET, the workspace proxies excepted), refused and failed ones included, failed logins, and the `berth` command's admin commands on the data directory. Filter by `user`, `resource`, `action` and time; 100 records a page unless `limit` says otherwise.")
            .query::<AuditQuery>()
            .ok::<Vec<AuditDto>>(),
        Op::delete("/api/users/{id}", "deleteUser", users::delete)
            .acts_on(ResourceKind::User, "id")
            .tag("users")
            .admin()
            .summary("Remove a user")
            .describe("Their tokens go with them. What they own (projects, workspaces, backups) passes to `transferTo`, which is required when they own any; nothing is deleted. Not yourself, not the last admin (409).")
            .query::<DeleteUserQuery>()
            .ok::<UserDeletedDto>()
            .errors(&[409]),
        // ---- nodes (admins) ----
        Op::get("/api/nodes", "listNodes", nodes::list)
            .tag("nodes")
            .admin()
            .summary("The Docker engines workspaces run on: state, capacity, allocation")
            .describe("`local` (the engine Berth started with) first. State and engine facts are from the last heartbeat (`nodes.heartbeat_s`).")
            .ok::<Vec<NodeDto>>(),
        Op::post("/api/nodes", "addNode", nodes::add)
            .creates(ResourceKind::Node)
            .tag("nodes")
            .admin()
            .summary("Add a Docker engine")
            .describe("Asked once at once: the answer says whether it is reachable (a node that is not is added all the same and asked again at every heartbeat). TLS client certificates are PEM text; the key is kept in the store and never shown again.")
            .json::<AddNodeRequest>()
            .created::<NodeDto>()
            .errors(&[409]),
        Op::get("/api/nodes/{node}", "getNode", nodes::get)
            .tag("nodes")
            .admin()
            .summary("One node")
            .ok::<NodeDto>(),
        Op::patch("/api/nodes/{node}", "updateNode", nodes::update)
            .acts_on(ResourceKind::Node, "node")
            .tag("nodes")
            .admin()
            .summary("Change a node's address or labels, cordon or uncordon it")
            .describe("A cordoned node keeps what runs on it and takes nothing new; uncordoning also ends a drain. The endpoint and certificates are not changed here: remove the node and add it again.")
            .json::<UpdateNodeRequest>()
            .ok::<NodeDto>(),
        Op::delete("/api/nodes/{node}", "removeNode", nodes::remove)
            .acts_on(ResourceKind::Node, "node")
            .tag("nodes")
            .admin()
            .summary("Remove a node that holds no project")
            .describe("Not `local` (409), not a node that still holds projects (409: move or delete them first).")
            .ok::<NodeRemovedDto>()
            .errors(&[409]),
        Op::post("/api/nodes/{node}/drain", "drainNode", nodes::drain)
            .acts_on(ResourceKind::Node, "node")
            .tag("nodes")
            .admin()
            .summary("Move every project off a node, one at a time, then leave it cordoned")
            .describe("The node takes nothing new at once (draining); in the background each of its projects moves (as `POST /api/projects/{id}/move` does) to where the planner puts it. A project that cannot move stays, with its reason in `failed`. The answer is the progress as it begins; `GET` the same path follows it. 409 while a drain of the node runs.")
            .ok::<DrainDto>()
            .errors(&[409])
            .engine(),
        Op::get("/api/nodes/{node}/drain", "getNodeDrain", nodes::drain_progress)
            .tag("nodes")
            .admin()
            .summary("The last drain of a node (by whichever replica ran it)")
            .ok::<DrainDto>(),
        Op::post("/api/placement", "planPlacement", nodes::plan)
            .tag("nodes")
            .admin()
            .summary("Where a workspace would go now, and why each node would or would not take it")
            .describe("Nothing is placed. The planner filters the nodes (ready; the labels asked for; the type's image there, or `images.pull_on_start`; enough unreserved memory and CPU; the project's volume pins its node) and scores those left (`nodes.placement`: spread or pack). No node fits: 409, with every node's reason.")
            .json::<PlacementRequestDto>()
            .ok::<PlacementDto>()
            .errors(&[404, 409]),
        // ---- projects ----
        Op::post("/api/projects", "createProject", projects::create)
            .creates(ResourceKind::Project)
            .tag("projects")
            .summary("Create a project and its volume, empty or cloned from a git repository")
            .describe("With `git`, the repository is cloned on Berth's host and written into the volume at `<dir>/` (a workspace sees `/workspace/<dir>`), on whichever node the project is placed, with its own `.git`. A clone that fails makes nothing: 400 for a URL, ref or repository that does not exist, 403 for a host `git.allowed_hosts` does not list, 422 when the repository refused the credentials (or wants some), 502 `git_failed` when its host did not answer, with git's own words.")
            .json::<CreateProjectRequest>()
            .created::<ProjectDto>()
            .errors(&[403, 422])
            .engine(),
        Op::get("/api/projects", "listProjects", projects::list)
            .tag("projects")
            .summary("The caller's projects (all, for an admin)")
            .query::<PageQuery>()
            .ok::<Vec<ProjectDto>>(),
        Op::get("/api/projects/{id}", "getProject", projects::get)
            .tag("projects")
            .summary("One project")
            .ok::<ProjectDto>(),
        Op::delete("/api/projects/{id}", "deleteProject", projects::delete)
            .acts_on(ResourceKind::Project, "id")
            .tag("projects")
            .summary("Delete a project")
            .describe("Refused while a workspace uses it. With `purge=true` its volume goes now; otherwise the volume is kept for the retention period. Its backups stay in the catalogue until deleted.")
            .query::<DeleteProjectQuery>()
            .ok::<ProjectDeletedDto>()
            .errors(&[409])
            .engine(),
        // ---- workspaces ----
        Op::get("/api/workspaces", "listWorkspaces", ws::list)
            .tag("workspaces")
            .summary("The caller's workspaces (all, for an admin)")
            .query::<PageQuery>()
            .ok::<Vec<WorkspaceDto>>(),
        Op::post("/api/workspaces", "createWorkspace", ws::create)
            .creates(ResourceKind::Workspace)
            .tag("workspaces")
            .summary("Create a workspace of a configured type")
            .json::<CreateWorkspaceRequest>()
            .created::<WorkspaceDto>()
            .errors(&[404, 409]),
        Op::get("/api/workspaces/types", "listTypes", ws::types)
            .tag("workspaces")
            .summary("The configured workspace types, and whether each can start here")
            .describe("Whether a type can start is read from the nodes' engines: 503 when no engine answers.")
            .ok::<Vec<TypeDto>>()
            .errors(&[503]),
        Op::post("/api/workspaces/types/{type}/pull", "pullTypeImage", ws::pull_type)
            .acts_on(ResourceKind::Type, "type")
            .tag("workspaces")
            .admin()
            .summary("Pull a type's image from its registry")
            .describe("Starts the pull (or joins the one under way) and answers its progress: 202 while it runs, 200 once done. Credentials come from `images.registries`. A registry that does not answer is a 502 that says so.")
            .ok::<PullDto>()
            .answers::<PullDto>(202)
            .errors(&[404, 409, 502]),
        Op::get("/api/workspaces/types/{type}/pull", "typeImagePull", ws::type_pull)
            .tag("workspaces")
            .admin()
            .summary("The progress of a type image's pull (layers, bytes)")
            .ok::<PullDto>()
            .errors(&[404]),
        Op::get("/api/workspaces/stats", "workspaceCounts", ws::stats)
            .tag("workspaces")
            .summary("Counts by type and status, and the default workspace")
            .ok::<StatsDto>(),
        Op::get("/api/workspaces/stats/live", "fleetStats", observe::fleet)
            .tag("observe")
            .summary("Live resource figures of every running workspace of the caller")
            .ok::<Vec<ResourceStatsDto>>()
            .engine(),
        Op::get("/api/workspaces/live", "workspacesLive", observe::live)
            .tag("observe")
            .summary("Status and health of the caller's workspaces as they change (Server-Sent Events)")
            .describe("Every workspace first, then one `data:` (`{id, status, statusReason, health}` as JSON) per change. Health follows the engine's events; status, the records.")
            .raw(SSE, "An event stream.")
            .engine(),
        Op::get("/api/workspaces/type/{type}", "workspacesByType", ws::by_type)
            .tag("workspaces")
            .summary("The caller's workspaces of one type")
            .ok::<Vec<WorkspaceDto>>(),
        Op::get("/api/workspaces/{id}", "getWorkspace", ws::get)
            .tag("workspaces")
            .summary("One workspace")
            .ok::<WorkspaceDto>(),
        Op::put("/api/workspaces/{id}", "updateWorkspace", ws::update)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("workspaces")
            .summary("Rename, describe, archive, set default, change the health check")
            .json::<UpdateWorkspaceRequest>()
            .ok::<WorkspaceDto>()
            .errors(&[409])
            .engine(),
        Op::delete("/api/workspaces/{id}", "deleteWorkspace", ws::delete)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("workspaces")
            .summary("Delete a workspace (its container goes; the project's volume stays)")
            .ok::<DeletedDto>()
            .engine(),
        Op::post("/api/workspaces/{id}/set-default", "setDefaultWorkspace", ws::set_default)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("workspaces")
            .summary("Make this the caller's default workspace")
            .ok::<WorkspaceDto>(),
        Op::post("/api/workspaces/{id}/start", "startWorkspace", ws::start)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("lifecycle")
            .summary("Start (creating the container if needed)")
            .ok::<WorkspaceDto>()
            .errors(&[409, 422])
            .engine(),
        Op::post("/api/workspaces/{id}/stop", "stopWorkspace", ws::stop)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("lifecycle")
            .summary("Stop")
            .ok::<WorkspaceDto>()
            .errors(&[409])
            .engine(),
        Op::post("/api/workspaces/{id}/restart", "restartWorkspace", ws::restart)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("lifecycle")
            .summary("Restart")
            .ok::<WorkspaceDto>()
            .errors(&[409, 422])
            .engine(),
        Op::get("/api/workspaces/{id}/status", "workspaceStatus", ws::status)
            .tag("lifecycle")
            .summary("Status, container summary, health and resource use")
            .ok::<StatusDto>()
            .engine(),
        Op::get("/api/workspaces/{id}/health", "workspaceHealth", ws::health)
            .tag("lifecycle")
            .summary("The health check's state and last result")
            .ok::<HealthResponseDto>()
            .engine(),
        Op::get("/api/workspaces/{id}/events", "workspaceEvents", ws::events)
            .tag("lifecycle")
            .summary("Recent lifecycle events (starts, recoveries, OOM kills), newest first")
            .query::<EventsQuery>()
            .ok::<Vec<EventDto>>(),
        Op::patch("/api/workspaces/{id}/resources", "updateResources", ws::update_resources)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("lifecycle")
            .summary("Change CPU and memory limits, live when running")
            .describe("Fields left out keep their value. Units: cores and MB.")
            .json::<ResourceOverrides>()
            .ok::<WorkspaceDto>()
            .errors(&[409, 422])
            .engine(),
        Op::post("/api/workspaces/{id}/switch-project", "switchProject", ws::switch_project)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("workspaces")
            .summary("Put another project's volume in the workspace (restarts it if running)")
            .json::<ProjectIdRequest>()
            .ok::<WorkspaceDto>()
            .errors(&[409, 422])
            .engine(),
        Op::get("/api/workspaces/{id}/projects", "workspaceProjects", ws::projects)
            .tag("workspaces")
            .summary("Projects assigned to this workspace")
            .ok::<Vec<ProjectDto>>(),
        Op::get("/api/workspaces/{id}/compatible-projects", "compatibleProjects", ws::compatible_projects)
            .tag("workspaces")
            .summary("The caller's projects this workspace can open")
            .ok::<Vec<ProjectDto>>(),
        Op::post("/api/workspaces/{id}/assign-project", "assignProject", ws::assign_project)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("workspaces")
            .summary("Assign a project to this workspace")
            .json::<ProjectIdRequest>()
            .ok::<ProjectDto>()
            .errors(&[409]),
        // ---- observe ----
        Op::get("/api/workspaces/{id}/logs", "workspaceLogs", observe::logs)
            .tag("observe")
            .summary("Container logs as plain text (stdout and stderr)")
            .query::<LogsParams>()
            .raw(&["text/plain; charset=utf-8"], "The log lines, streamed, up to `logs.max_bytes`.")
            .engine(),
        Op::get("/api/workspaces/{id}/logs/stream", "workspaceLogStream", observe::log_stream)
            .tag("observe")
            .summary("Follow the logs (Server-Sent Events)")
            .describe("One `data:` event per line, with the line's timestamp as `id` (send `Last-Event-ID` to resume). `event: error` carries an engine error; `event: end` means the container stopped.")
            .query::<LogStreamParams>()
            .header("Last-Event-ID", "Resume after this event id (an RFC 3339 timestamp).")
            .raw(SSE, "An event stream.")
            .engine(),
        Op::get("/api/workspaces/{id}/stats", "workspaceStats", observe::stats)
            .tag("observe")
            .summary("CPU, memory, network, block I/O and recent history")
            .ok::<ResourceStatsDto>()
            .errors(&[409])
            .engine(),
        Op::get("/api/workspaces/{id}/container-stats", "containerStats", observe::stats)
            .tag("observe")
            .summary("Same as `/stats` (the original system's path)")
            .ok::<ResourceStatsDto>()
            .errors(&[409])
            .engine(),
        Op::get("/api/workspaces/{id}/stats/stream", "workspaceStatsStream", observe::stats_stream)
            .tag("observe")
            .summary("Resource figures every `interval` seconds (Server-Sent Events)")
            .describe("Each `data:` is a ResourceStats object as JSON; `event: end` when the container stops.")
            .query::<StatsStreamParams>()
            .raw(SSE, "An event stream.")
            .errors(&[409])
            .engine(),
        // ---- proxy ----
        Op::any("/api/workspaces/{id}/proxy", "proxyBare", proxy::bare)
            .unaudited()
            .public()
            .tag("proxy")
            .summary("Redirects to `/proxy/`, keeping the query")
            .redirect(308, "To the same path with a trailing slash."),
        Op::any("/api/workspaces/{id}/proxy/", "proxyRoot", proxy::proxy)
            .unaudited()
            .tag("proxy")
            .summary("The workspace's own app, at its root")
            .describe("Path mode: forwarded to the workspace's published port on 127.0.0.1, bodies streamed both ways; WebSocket upgrades are tunnelled. A stopped workspace is started and waited for. Serves the workspace's owner only (403 for an admin, unless `proxy.dangerous_allow_path_app_admin_access`); with `proxy.app_domain` set, browser navigations go to the app's own origin.")
            .passthrough("What the workspace answers.")
            .redirect(303, "A browser's page load without a session goes to the web UI's login, which comes back here after; with `proxy.app_domain`, to the app's own origin.")
            .unlimited_body()
            .errors(&[403, 502, 503, 504])
            .starting_page(),
        Op::any("/api/workspaces/{id}/proxy/{*rest}", "proxy", proxy::proxy)
            .unaudited()
            .tag("proxy")
            .summary("The workspace's own app")
            .describe("As `/proxy/`, for any path below it.")
            .passthrough("What the workspace answers.")
            .redirect(303, "A browser's page load without a session goes to the web UI's login, which comes back here after; with `proxy.app_domain`, to the app's own origin.")
            .unlimited_body()
            .errors(&[403, 502, 503, 504])
            .starting_page(),
        // ---- workspace apps: ports, shares, the login handoff ----
        Op::get("/api/workspaces/{id}/ports", "workspacePorts", apps::ports)
            .tag("apps")
            .summary("The TCP ports the workspace listens on, with their URLs and shares")
            .describe("Read from the running container's network namespace; a stopped workspace listens on none.")
            .ok::<Vec<PortDto>>()
            .engine(),
        Op::put("/api/workspaces/{id}/shares/{port}", "shareWorkspacePort", apps::put_share)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("apps")
            .summary("Share a port of your workspace on its app origin")
            .describe("`authenticated`: anyone logged in to Berth may open it; `public`: anyone (only with `proxy.allow_public_shares`); `owner` ends the share. Shares apply on app origins only (`proxy.app_domain`); path mode serves the owner alone.")
            .json::<ShareRequest>()
            .ok::<ShareDto>(),
        Op::delete("/api/workspaces/{id}/shares/{port}", "unshareWorkspacePort", apps::delete_share)
            .acts_on(ResourceKind::Workspace, "id")
            .tag("apps")
            .summary("End a port's share (its owner, or an admin)")
            .ok::<UnsharedDto>(),
        Op::get("/api/shares", "listShares", apps::list_shares)
            .tag("apps")
            .admin()
            .summary("Every shared port of every workspace")
            .ok::<Vec<ShareDto>>(),
        Op::get("/api/apps/auth", "appHandoff", apps::handoff)
            .public()
            .tag("apps")
            .summary("Log a browser in to a workspace app's own origin")
            .describe("With Berth's session, redirects to the app origin with a single-use code that it exchanges for an app cookie valid on that origin only; without one, to the web UI's login, which comes back here.")
            .query::<HandoffQuery>()
            .redirect(303, "To the app origin with a code, or to the login.")
            .errors(&[400, 404]),
        Op::any("/api/workspaces/{id}/ports/{port}", "portProxyBare", proxy::bare)
            .unaudited()
            .public()
            .tag("apps")
            .summary("Redirects to `/ports/{port}/`, keeping the query")
            .redirect(308, "To the same path with a trailing slash."),
        Op::any("/api/workspaces/{id}/ports/{port}/", "portProxyRoot", proxy::port_proxy)
            .unaudited()
            .tag("apps")
            .summary("Another port of the workspace, at its root (path mode, owner only)")
            .describe("Reached inside the container through the engine (never its IP address). Browser navigations go to the port's own origin when `proxy.app_domain` is set.")
            .passthrough("What the workspace answers.")
            .redirect(303, "To the login, or to the port's own origin.")
            .unlimited_body()
            .errors(&[403, 502, 503, 504])
            .starting_page(),
        Op::any("/api/workspaces/{id}/ports/{port}/{*rest}", "portProxy", proxy::port_proxy)
            .unaudited()
            .tag("apps")
            .summary("Another port of the workspace (path mode, owner only)")
            .describe("As `/ports/{port}/`, for any path below it.")
            .passthrough("What the workspace answers.")
            .redirect(303, "To the login, or to the port's own origin.")
            .unlimited_body()
            .errors(&[403, 502, 503, 504])
            .starting_page(),
        // ---- volumes and backups ----
        Op::post("/api/workspaces/projects/{id}/backup", "createBackup", backups::create)
            .acts_on(ResourceKind::Project, "id")
            .tag("backups")
            .summary("Back up the project's volume into the catalogue")
            .describe("An empty body is fine (zstd, no pause).")
            .optional_json::<BackupRequest>()
            .created::<BackupDto>()
            .errors(&[409, 413, 415, 422])
            .engine()
            .also_at("/api/projects/{id}/backup", "backupProject"),
        Op::post("/api/workspaces/projects/{id}/restore", "restoreBackup", backups::restore)
            .acts_on(ResourceKind::Project, "id")
            .tag("backups")
            .summary("Restore a backup into the project (a new volume; the old one is kept)")
            .json::<RestoreRequest>()
            .ok::<RestoredDto>()
            .errors(&[409, 422])
            .engine()
            .also_at("/api/projects/{id}/restore", "restoreProject"),
        Op::post("/api/workspaces/projects/{id}/clone", "cloneVolume", volumes::clone)
            .acts_on(ResourceKind::Project, "id")
            .tag("backups")
            .summary("Copy the project's volume into another project (existing or new)")
            .json::<CloneRequest>()
            .ok::<ClonedDto>()
            .errors(&[409, 422])
            .engine()
            .also_at("/api/projects/{id}/clone", "cloneProject"),
        Op::post("/api/projects/{id}/move", "moveProject", volumes::move_project)
            .acts_on(ResourceKind::Project, "id")
            .tag("nodes")
            .admin()
            .summary("Move a project to another node (admins)")
            .describe("Stops the project's running workspaces, streams its volume from its node's engine into a new volume on the target (helper containers on both, piped), reads both back and compares their content digests, and only then switches the project and its workspaces to the target, starting again what ran. Any failure leaves the project where it was. The old volume is kept on the old node for the retention period. 409 when the target cannot take it (the planner's reason), 503 when either node does not answer.")
            .json::<MoveRequest>()
            .ok::<MovedDto>()
            .errors(&[409, 503])
            .engine(),
        Op::post("/api/projects/{id}/recover", "recoverProject", backups::recover_project)
            .acts_on(ResourceKind::Project, "id")
            .tag("nodes")
            .admin()
            .summary("Recover a project onto another node from its newest complete backup (admins)")
            .describe("For a project whose node is lost. Never done by Berth itself: what was written after that backup is lost, and the answer says how old the backup was. The archive is fetched back from remote storage when it is not on this host. The project and its workspaces (stopped) switch to the target; what is left on the old node (containers, the old volume) is cleaned up there when it returns. 409 when there is no complete backup or the target cannot take it.")
            .json::<MoveRequest>()
            .ok::<RecoveredDto>()
            .errors(&[409, 503])
            .engine(),
        Op::get("/api/workspaces/projects/{id}/volume-size", "volumeSize", volumes::size)
            .tag("backups")
            .summary("The size of the project's volume")
            .ok::<SizeDto>()
            .engine()
            .also_at("/api/projects/{id}/volume-size", "projectVolumeSize"),
        Op::get("/api/projects/{id}/backups", "listBackups", backups::list)
            .tag("backups")
            .summary("The project's backup catalogue, newest first")
            .query::<PageQuery>()
            .ok::<Vec<BackupDto>>(),
        Op::post("/api/projects/{id}/backups/upload", "uploadBackup", backups::upload)
            .acts_on(ResourceKind::Project, "id")
            .tag("backups")
            .summary("Add an archive to the catalogue (checked before it is kept)")
            .query::<UploadQuery>()
            .header_matching(
                "X-Checksum-Sha256",
                "The archive's SHA-256 (64 hex digits); checked when sent.",
                "^[0-9a-fA-F]{64}$",
            )
            .raw_body("application/octet-stream", "A `.tar.zst` or `.tar.gz` archive as Berth writes them.")
            .created::<BackupDto>()
            .errors(&[413, 422])
            .unlimited_body(),
        Op::get("/api/projects/{id}/backup-policy", "getBackupPolicy", backups::get_policy)
            .tag("backups")
            .summary("The project's schedule and retention (own settings and effective)")
            .ok::<PolicyDto>(),
        Op::put("/api/projects/{id}/backup-policy", "putBackupPolicy", backups::put_policy)
            .acts_on(ResourceKind::Project, "id")
            .tag("backups")
            .summary("Set the project's schedule and retention; a field left out follows the config")
            .json::<PolicyRequest>()
            .ok::<PolicyDto>(),
        Op::get("/api/backups/{id}", "getBackup", backups::get)
            .tag("backups")
            .summary("One backup")
            .ok::<BackupDto>(),
        Op::delete("/api/backups/{id}", "deleteBackup", backups::delete)
            .acts_on(ResourceKind::Backup, "id")
            .tag("backups")
            .summary("Delete a backup and its archive")
            .ok::<DeletedDto>()
            .errors(&[409]),
        Op::get("/api/backups/{id}/download", "downloadBackup", backups::download)
            .tag("backups")
            .summary("The archive, streamed, with `X-Checksum-Sha256`")
            .describe("When the local archive is gone and a remote copy is stored, it is fetched back first (checksum checked: 422 if it does not match, 502 if the store fails).")
            .raw(&["application/zstd", "application/gzip"], "The archive.")
            .errors(&[409, 422, 502]),
        Op::post("/api/backups/{id}/verify", "verifyBackup", backups::verify)
            .acts_on(ResourceKind::Backup, "id")
            .tag("backups")
            .summary("Check the archive's checksum and read it through")
            .ok::<VerifyDto>()
            .errors(&[409, 422, 502]),
        // ---- jobs ----
        Op::post("/api/workspaces/cleanup", "cleanup", jobs::cleanup)
            .admin()
            .tag("jobs")
            .summary("Run every cleanup job now and report what it did (or would do)")
            .query::<DryRunQuery>()
            .ok::<CleanupDto>(),
        Op::get("/api/jobs", "listJobs", jobs::list)
            .admin()
            .tag("jobs")
            .summary("Scheduled jobs, their next run and recent runs")
            .describe("Every replica keeps the schedules; each tick runs once, on the replica that records it first (`replica` in a run). `running`: a run is under way on any replica.")
            .ok::<Vec<JobDto>>(),
        Op::get("/api/replicas", "listReplicas", replicas::list)
            .admin()
            .tag("jobs")
            .summary("The Berth processes serving from this database, and their state")
            .describe("A replica beats every `replicas.heartbeat_s`; one without a heartbeat for `replicas.dead_after_s` is `gone`, and another takes care of what it left under way (backups, volume copies, job runs, drains: marked interrupted, partial data removed). Gone and stopped replicas stay listed for a day.")
            .ok::<Vec<ReplicaDto>>(),
        Op::get("/api/jobs/{name}/runs", "jobRuns", jobs::runs)
            .admin()
            .tag("jobs")
            .summary("One job's runs, newest first, by pages")
            .describe("Without `limit`, every run the store keeps.")
            .query::<PageQuery>()
            .ok::<Vec<RunDto>>()
            .errors(&[404]),
        Op::post("/api/jobs/{name}/run", "runJob", jobs::run)
            .acts_on(ResourceKind::Job, "name")
            .admin()
            .tag("jobs")
            .summary("Run one job now")
            .query::<DryRunQuery>()
            .ok::<RunDto>(),
    ])
}
