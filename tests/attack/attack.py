"""Berth's own attack suite, against a real server (the `berth` binary given
as ATTACK_BIN), the local Docker engine and a fresh SQLite database. Run by
scripts/attack; a quick subset on every CI run, the whole with --full.

Parts (each prints what it measured; any finding fails the run):

  matrix     every operation of docs/openapi.json as another member and
             without credentials, with the first member's ids in the path,
             query and body: any 2xx that touches them, and any of their ids
             in an answer that did not ask with it, is a leak;
  kill       kill -9 of the server at random moments of backup, restore,
             clone, upload and workspace create/start, then a restart: every
             backup marked complete verifies, every project's files are as
             they were or as the operation made them (file-hash manifests),
             no helper container or partial volume stays;
  archives   a corpus of hostile archives uploaded and, when accepted,
             restored: nothing lands outside the volume, refusals are 4xx,
             the server's resident memory stays bounded;
  race       a workspace swaps its directories with symlinks to a marker
             directory on the host, without pause, while its project is
             backed up, cloned, sized, restored and (under
             scripts/with-nodes) moved: no marker content in any archive,
             clone, size or moved volume, nothing written into the marker
             directory;
  texts      every string field of every operation (body, query, path)
             sent CR/LF, NUL, U+202E and one character over its bound:
             each a 400 naming the field, nothing stored, no 5xx;
  csrf       cookie-authenticated changes from another origin are refused;
  throttle   failed logins are locked out, known and unknown emails alike;
  load       wrk (Debian's) at fixed concurrency on status, list, logs and
             stats with SSE streams open: latency, errors, the server's RSS
             and open file descriptors before, during and after.
"""

import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse

FULL = os.environ.get("ATTACK_FULL") == "1"
BIN = os.environ["ATTACK_BIN"]
IMAGE = os.environ["ATTACK_IMAGE"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = {}
FINDINGS = []
# The host directory the racing workspace points its symlinks at: what no
# archive, clone, size or moved volume may ever hold.
MARKER = "BERTH-HOST-MARKER-" + os.urandom(8).hex()
MARKER_DIR = tempfile.mkdtemp(prefix="berth-attack-marker-")


def say(part, msg):
    print(f"attack[{part}]: {msg}", flush=True)


def finding(part, msg):
    FINDINGS.append(f"{part}: {msg}")
    print(f"attack[{part}]: FINDING: {msg}", flush=True)


def server_env():
    """The environment for the berth binary: the tests' own BERTH_TEST_*
    and BERTH_REQUIRE_* variables left out (the binary refuses BERTH_ keys
    it does not know)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BERTH_TEST_", "BERTH_REQUIRE_"))}
    env["BERTH_LOG"] = "warn"
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# The racing workspace: four directories of files, swapped without pause
# for symlinks to the marker directory (and a file for a symlink to a
# marker file) by a native loop (tests/attack/racer.c, built static by
# scripts/attack as ATTACK_RACER and copied into the volume), while it
# serves its health check.
RACER = (
    "cd /workspace && for d in 0 1 2 3; do mkdir -p d$d; for f in 0 1 2 3 4 5 6 7; do "
    "echo volume-data > d$d/f$f; done; done; "
    "(./.racer " + MARKER_DIR + " 4 &) ; "
    "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"
)


class Berth:
    """One Berth installation: a data directory, a config, a server process."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-attack-")
        self.port = free_port()
        self.instance = "attack-" + os.urandom(4).hex()
        self.config = os.path.join(self.dir, "berth.toml")
        with open(self.config, "w") as f:
            f.write(f"""
listen = "127.0.0.1:{self.port}"
data_dir = "{self.dir}/data"
instance = "{self.instance}"
stop_timeout_s = 1
[nodes]
# Many quiet workspaces at once on two cores: CPU limits overcommitted.
cpu_allocation_ratio = 16.0
[backups]
max_unpacked_mb = 256
[auth]
login_free_attempts = 5
login_lock_base_s = 30
[types.box]
image = "{IMAGE}"
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && (while true; do echo tick; sleep 1; done &) && exec httpd -f -p 8080 -h /tmp/www"]
[types.box.resources]
cpus = 0.5
memory_mb = 64
[types.box.health_check]
command = "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1"
interval_s = 1
timeout_s = 2
retries = 2
start_period_s = 0
[types.racer]
image = "{IMAGE}"
port = 8080
command = ["sh", "-c", '''{RACER}''']
[types.racer.resources]
cpus = 0.5
memory_mb = 64
""")
        self.proc = None
        self.base = f"http://127.0.0.1:{self.port}"

    def cli(self, *args, stdin=None):
        out = subprocess.run([BIN, "--config", self.config, *args], input=stdin, capture_output=True,
                             text=True, env=server_env())
        if out.returncode != 0:
            raise RuntimeError(f"berth {args}: {out.stderr}")
        return out.stdout.strip()

    def user(self, email, admin=False):
        password = "pw-" + os.urandom(6).hex()
        self.cli("user", "add", email, *(["--admin"] if admin else []), "--password-stdin", stdin=password + "\n")
        token = self.cli("token", "create", email)
        return {"email": email, "password": password, "token": token}

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen([BIN, "--config", self.config, "serve"], stdout=log, stderr=log,
                                     env=server_env())
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("berth exited at start; see " + log.name)
                time.sleep(0.1)
        raise RuntimeError("berth never came up")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        """Open descriptors, less the database's files: the store's pool
        opens connections (a database and a WAL file each) up to its bounded
        size as concurrency rises and keeps them for reuse, which is not a
        leak; every other descriptor (sockets, archives, pipes) counts."""
        n = 0
        d = f"/proc/{self.proc.pid}/fd"
        for fd in os.listdir(d):
            try:
                target = os.readlink(f"{d}/{fd}")
            except OSError:
                continue
            if not re.search(r"/berth\.db(-wal|-shm)?$", target):
                n += 1
        return n

    def cleanup(self):
        self.stop()
        for kind in ("ps -aq", "volume ls -q"):
            ids = subprocess.run(f"docker {kind} --filter label=berth.instance={self.instance}".split(),
                                 capture_output=True, text=True).stdout.split()
            if ids:
                rm = ["docker", "rm", "-f"] if kind.startswith("ps") else ["docker", "volume", "rm", "-f"]
                subprocess.run(rm + ids, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def volumes(self):
        return set(subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=berth.instance={self.instance}"],
            capture_output=True, text=True).stdout.split())

    def helpers(self):
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=berth.instance={self.instance}",
             "--filter", "label=berth.helper=true"], capture_output=True, text=True).stdout.split()


def request(berth, method, path, token=None, body=None, headers=None, raw=None, timeout=120):
    """(status, headers, bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", berth.port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    if (r.getheader("Content-Type") or "").startswith("text/event-stream"):
        # An event stream does not end (and its keep-alives beat any read
        # timeout): what it sends in a second is the answer.
        c.sock.settimeout(1.0)
        chunks = []
        try:
            while True:
                b = r.read1(65536)
                if not b:
                    break
                chunks.append(b)
        except (socket.timeout, TimeoutError):
            pass
        out = b"".join(chunks)
    else:
        out = r.read()
    c.close()
    return r.status, dict(r.getheaders()), out


def api(berth, method, path, token, body=None, ok=(200, 201)):
    s, _, out = request(berth, method, path, token, body)
    if s not in ok:
        raise RuntimeError(f"{method} {path}: {s} {out[:300]!r}")
    return json.loads(out)["data"] if out else None


def mountpoint(volume):
    return subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume],
                          capture_output=True, text=True).stdout.strip()


def manifest(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                out[os.path.relpath(p, root)] = "link:" + os.readlink(p)
            else:
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def fill(root, dirs, files, size):
    for d in range(dirs):
        os.makedirs(os.path.join(root, f"d{d}"), exist_ok=True)
        for i in range(files):
            with open(os.path.join(root, f"d{d}", f"f{i}"), "wb") as f:
                f.write(os.urandom(size))


# ---------------------------------------------------------------- matrix

ID_FIELDS = {"projectId": "project", "targetProjectId": "project", "backupId": "backup",
             "transferTo": "user", "workspaceId": "workspace"}


def schema_body(doc, schema, ids):
    """A small body for `schema`: required fields filled, id fields with A's."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"]
            return schema_body(doc, branches[0], ids) if branches else None
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    if t == "object" or "properties" in schema:
        out = {}
        for name, sub in schema.get("properties", {}).items():
            if name in ID_FIELDS:
                out[name] = ids[ID_FIELDS[name]]
            elif name in schema.get("required", []):
                out[name] = schema_body(doc, sub, ids)
        return out
    if "enum" in schema:
        return schema["enum"][0]
    if t == "string":
        return "attack"
    if t in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if t == "boolean":
        return False
    if t == "array":
        return []
    return None


def matrix(berth, a, b):
    part = "matrix"
    with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
        doc = json.load(f)
    # A's resources, each kind once.
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "a-project"})
    w = api(berth, "POST", "/api/workspaces", a["token"], {"name": "a-ws", "type": "box", "projectId": p["id"]})
    bk = api(berth, "POST", f"/api/workspaces/projects/{p['id']}/backup", a["token"], {})
    tok = api(berth, "POST", "/api/auth/tokens", a["token"], {"name": "a-token"})
    me = api(berth, "GET", "/api/auth/me", a["token"])
    ids = {"project": p["id"], "workspace": w["id"], "backup": bk["id"], "token": tok["id"], "user": me["id"]}
    a_ids = set(ids.values())

    def path_id(path):
        if path.startswith("/api/projects/") or path.startswith("/api/workspaces/projects/"):
            return ids["project"]
        if path.startswith("/api/backups/"):
            return ids["backup"]
        if path.startswith("/api/users/"):
            return ids["user"]
        if path.startswith("/api/auth/tokens/"):
            return ids["token"]
        return ids["workspace"]

    sent = leaks = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            auth = not op.get("security") == []
            if not auth:
                continue
            if "{rest}" in path or method in ("trace",):
                continue
            if path.endswith("/logout"):
                continue
            url = re.sub(r"\{id\}", path_id(path), path)
            url = url.replace("{port}", "8080").replace("{type}", "box").replace("{name}", "inactive")
            qs = {}
            for prm in op.get("parameters", []):
                if prm.get("in") == "query" and prm.get("required"):
                    qs[prm["name"]] = "x"
            if path == "/api/apps/auth":
                continue
            if qs:
                url += "?" + urllib.parse.urlencode(qs)
            body = None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = schema_body(doc, content["application/json"]["schema"], ids) or {}
            raw = b"not an archive" if "application/octet-stream" in content else None
            carries = any(i in url for i in a_ids) or (body is not None and any(i in json.dumps(body) for i in a_ids))
            for who, token in (("member", b["token"]), ("anonymous", None)):
                s, _, out = request(berth, method.upper(), url, token, body, raw=raw, timeout=30)
                sent += 1
                text = out.decode("utf-8", "replace")
                if 200 <= s < 300 and (carries or who == "anonymous"):
                    leaks += 1
                    finding(part, f"{who} {method.upper()} {url} answered {s}")
                # An id of A's in an answer that did not ask with it.
                for i in a_ids:
                    if i in text and i not in url and not (body and i in json.dumps(body)):
                        leaks += 1
                        finding(part, f"{who} {method.upper()} {url} answered with A's id {i}")
    say(part, f"{sent} requests as another member and anonymous, {leaks} leaks")
    RESULTS["matrix"] = {"requests": sent, "leaks": leaks}


# ---------------------------------------------------------------- kill

def kill_suite(berth, a):
    part = "kill"
    rounds = 5 if FULL else 1
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "kill-src"})
    root = mountpoint(p["volumeName"])
    fill(root, 20 if FULL else 8, 200, 8192)
    src_manifest = manifest(root)
    base = api(berth, "POST", f"/api/workspaces/projects/{p['id']}/backup", a["token"], {})
    # An archive for the upload case.
    s, _, archive = request(berth, "GET", f"/api/backups/{base['id']}/download", a["token"])
    dst = api(berth, "POST", "/api/projects", a["token"], {"name": "kill-dst"})
    with open(os.path.join(mountpoint(dst["volumeName"]), "keep.txt"), "w") as f:
        f.write("the target's own data\n")
    dst_manifest = manifest(mountpoint(dst["volumeName"]))

    def op_backup():
        return request(berth, "POST", f"/api/workspaces/projects/{p['id']}/backup", a["token"], {})

    def op_restore():
        return request(berth, "POST", f"/api/workspaces/projects/{dst['id']}/restore", a["token"],
                       {"backupId": base["id"], "stopWorkspace": True})

    def op_clone():
        return request(berth, "POST", f"/api/workspaces/projects/{p['id']}/clone", a["token"],
                       {"targetProjectId": dst["id"], "overwrite": True})

    def op_upload():
        return request(berth, "POST", f"/api/projects/{dst['id']}/backups/upload", a["token"], raw=archive,
                       headers={"Content-Type": "application/octet-stream"})

    def op_workspace():
        s, _, out = request(berth, "POST", "/api/workspaces", a["token"],
                            {"name": "k", "type": "box", "projectId": p["id"]})
        if s == 201:
            wid = json.loads(out)["data"]["id"]
            return request(berth, "POST", f"/api/workspaces/{wid}/start", a["token"])
        return s, {}, out

    ops = [("backup", op_backup), ("restore", op_restore), ("clone", op_clone),
           ("upload", op_upload), ("workspace", op_workspace)]
    # How long each takes, to pick kill moments inside it.
    took = {}
    for name, op in ops:
        t = time.time()
        op()
        took[name] = max(time.time() - t, 0.05)
    # The target now holds what a completed restore/clone made: both are
    # the source's data (or the backup's, the same).
    dst_now = manifest(mountpoint(api(berth, "GET", f"/api/projects/{dst['id']}", a["token"])["volumeName"]))
    kills = 0
    for r in range(rounds):
        for name, op in ops:
            volumes_before = berth.volumes()
            target_before = manifest(mountpoint(api(berth, "GET", f"/api/projects/{dst['id']}", a["token"])["volumeName"]))
            t = threading.Thread(target=lambda: _swallow(op))
            t.start()
            time.sleep(random.uniform(0, took[name]))
            berth.kill()
            kills += 1
            t.join()
            berth.start()
            time.sleep(0.5)
            # Every complete backup verifies.
            for b in api(berth, "GET", f"/api/projects/{p['id']}/backups", a["token"]) + \
                    api(berth, "GET", f"/api/projects/{dst['id']}/backups", a["token"]):
                if b["state"] == "complete":
                    s, _, out = request(berth, "POST", f"/api/backups/{b['id']}/verify", a["token"])
                    if s != 200:
                        finding(part, f"after a kill during {name}: backup {b['id']} complete but verify {s} {out[:200]!r}")
                elif b["state"] == "in_progress":
                    finding(part, f"after a kill during {name}: backup {b['id']} still in progress")
            # The source is untouched; the target is as before or as made.
            if manifest(root) != src_manifest:
                finding(part, f"after a kill during {name}: the source project's files changed")
            target_after = manifest(mountpoint(api(berth, "GET", f"/api/projects/{dst['id']}", a["token"])["volumeName"]))
            if target_after not in (target_before, dst_now, src_manifest):
                finding(part, f"after a kill during {name}: the target holds partial data "
                              f"({len(target_after)} of {len(src_manifest)} files)")
            if berth.helpers():
                finding(part, f"after a kill during {name}: helper containers left: {berth.helpers()}")
            # New volumes: only ones a project now uses (a switch that
            # completed); the partial ones are gone.
            projects = api(berth, "GET", "/api/projects", a["token"])
            used = {x["volumeName"] for x in projects}
            for v in berth.volumes() - volumes_before:
                if v not in used:
                    finding(part, f"after a kill during {name}: volume {v} left behind")
            # The orphan jobs find nothing new to clean.
            for job in ("orphaned-containers",):
                rep = api(berth, "POST", f"/api/jobs/{job}/run?dryRun=true", a["admin_token"])
                if sum(rep.get("counts", {}).values()):
                    finding(part, f"after a kill during {name}: {job} would act: {rep['counts']} {rep['details']}")
    say(part, f"{kills} kills ({rounds} per operation: backup, restore, clone, upload, workspace); "
              f"{len([f for f in FINDINGS if f.startswith('kill')])} findings")
    RESULTS["kill"] = {"kills": kills}
    # Back to a clean state for what follows.
    _ = dst_manifest


def _swallow(f):
    try:
        f()
    except Exception:
        pass


# ---------------------------------------------------------------- race

def marker_tree():
    """The marker directory: every file with its hash, and its mtime."""
    os.makedirs(os.path.join(MARKER_DIR, "sub"), exist_ok=True)
    for n in range(30):
        with open(os.path.join(MARKER_DIR, f"secret{n}"), "w") as f:
            f.write(MARKER + "\n")
    with open(os.path.join(MARKER_DIR, "sub", "deep"), "w") as f:
        f.write(MARKER + "\n")
    # Large: a size that counted it would show.
    with open(os.path.join(MARKER_DIR, "big"), "w") as f:
        f.write((MARKER + "\n") * ((20 << 20) // (len(MARKER) + 1)))


def marker_state():
    return (manifest(MARKER_DIR), os.stat(MARKER_DIR).st_mtime_ns,
            os.stat(os.path.join(MARKER_DIR, "sub")).st_mtime_ns)


def leaks_in_dir(root):
    """Regular files under `root` (not followed) whose content holds the
    marker. Only for a volume no workspace is changing: this walk is by
    path, as the old one in Berth was."""
    out = []
    for d, dirs, files in os.walk(root, followlinks=False):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # a symlink or gone by now: nothing Berth wrote there
            with os.fdopen(fd, "rb") as fh:
                if MARKER.encode() in fh.read():
                    out.append(os.path.relpath(p, root))
    return out


def leaks_in_archive(data):
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        for m in t:
            if m.isfile() and MARKER.encode() in t.extractfile(m).read():
                out.append(m.name)
    return out


def wait_healthy(berth, token, wid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = api(berth, "GET", f"/api/workspaces/{wid}/status", token)
        if st["status"] == "running":
            return
        time.sleep(0.2)
    raise RuntimeError(f"workspace {wid} never ran")


def race(berth, a):
    part = "race"
    tries = 50 if FULL else 5
    marker_tree()
    before = marker_state()
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "race"})
    # The member's own program in the member's own volume.
    racer = os.path.join(mountpoint(p["volumeName"]), ".racer")
    shutil.copy(os.environ["ATTACK_RACER"], racer)
    os.chmod(racer, 0o755)
    w = api(berth, "POST", "/api/workspaces", a["token"], {"name": "racer", "type": "racer", "projectId": p["id"]})
    api(berth, "POST", f"/api/workspaces/{w['id']}/start", a["token"])
    wait_healthy(berth, a["token"], w["id"])
    time.sleep(1)  # the loop has made its files and is swapping
    counts = {}
    leaks = {}

    def leak(op, what):
        leaks.setdefault(op, 0)
        leaks[op] += 1
        finding(part, f"{op}: host marker content in {what}")

    # Backups, each downloaded and read through.
    backups = []
    for i in range(tries):
        b = api(berth, "POST", f"/api/workspaces/projects/{p['id']}/backup", a["token"], {"compression": "gzip"})
        s, _, data = request(berth, "GET", f"/api/backups/{b['id']}/download", a["token"])
        if s != 200:
            finding(part, f"backup {i}: download {s}")
            continue
        for name in leaks_in_archive(data):
            leak("backup", f"archive entry {name}")
        backups.append(b["id"])
    counts["backup"] = tries
    # Clones into new projects, read on the host.
    for i in range(tries):
        c = api(berth, "POST", f"/api/workspaces/projects/{p['id']}/clone", a["token"], {"name": f"race-clone-{i}"})
        target = c["targetProject"]
        for name in leaks_in_dir(mountpoint(target["volumeName"])):
            leak("clone", f"clone file {name}")
        api(berth, "DELETE", f"/api/projects/{target['id']}?purge=true", a["token"])
    counts["clone"] = tries
    # Sizes, measured afresh each time by the volume-sizes job.
    most = 0
    for i in range(tries):
        api(berth, "POST", "/api/jobs/volume-sizes/run", a["admin_token"])
        size = api(berth, "GET", f"/api/workspaces/projects/{p['id']}/volume-size", a["token"])["sizeBytes"]
        most = max(most, size)
    if most > 10 << 20:
        leak("size", f"a size of {most} bytes (the volume holds a few KB; the marker directory 20 MB)")
    counts["size"] = tries
    # Restores of backups the race made (they hold its symlinks), each
    # with the workspace stopped and started again after.
    for i in range(tries):
        bid = backups[i % len(backups)] if backups else None
        if not bid:
            break
        # Stopped first, so the restored volume is read before the racer
        # runs in it again.
        api(berth, "POST", f"/api/workspaces/{w['id']}/stop", a["token"])
        api(berth, "POST", f"/api/workspaces/projects/{p['id']}/restore", a["token"],
            {"backupId": bid, "stopWorkspace": True})
        vol = api(berth, "GET", f"/api/projects/{p['id']}", a["token"])["volumeName"]
        for name in leaks_in_dir(mountpoint(vol)):
            leak("restore", f"restored file {name}")
        if marker_state() != before:
            finding(part, "restore: the marker directory changed")
        api(berth, "POST", f"/api/workspaces/{w['id']}/start", a["token"])
        wait_healthy(berth, a["token"], w["id"])
    counts["restore"] = tries
    # Moves to another engine and back, when scripts/with-nodes made one.
    nodes = os.environ.get("BERTH_TEST_NODES", "")
    if nodes:
        name, endpoint = nodes.split(",")[0].split("=", 1)
        addrs = dict(x.split("=", 1) for x in os.environ["BERTH_TEST_NODE_ADDRS"].split(","))
        socks = dict(x.split("=", 1) for x in os.environ["BERTH_TEST_NODE_SOCKS"].split(","))
        body = {"name": name, "endpoint": endpoint, "address": addrs[name]}
        if endpoint.endswith(":2376"):
            tls = os.environ["BERTH_TEST_NODE_TLS"]
            body["tls"] = {k: open(os.path.join(tls, f"{k}.pem")).read() for k in ("ca", "cert", "key")}
        added = api(berth, "POST", "/api/nodes", a["admin_token"], body)
        deadline = time.time() + 60
        while added["state"] != "ready":
            if time.time() > deadline:
                raise RuntimeError(f"node {name} never ready: {added}")
            time.sleep(1)
            added = api(berth, "GET", f"/api/nodes/{name}", a["admin_token"])
        moves = 50 if FULL else 2
        for i in range(moves):
            for to in (name, "local"):
                wait_healthy(berth, a["token"], w["id"])
                time.sleep(0.3)
                api(berth, "POST", f"/api/projects/{p['id']}/move", a["admin_token"], {"node": to})
                # The move starts the racer again there: stopped, so that
                # this check reads a volume nobody is changing.
                api(berth, "POST", f"/api/workspaces/{w['id']}/stop", a["token"])
                vol = api(berth, "GET", f"/api/projects/{p['id']}", a["token"])["volumeName"]
                host = ["docker"] if to == "local" else ["docker", "-H", socks[name]]
                mp = subprocess.run(host + ["volume", "inspect", "-f", "{{.Mountpoint}}", vol],
                                    capture_output=True, text=True).stdout.strip()
                for f in leaks_in_dir(mp):
                    leak("move", f"moved file {f} (to {to})")
                api(berth, "POST", f"/api/workspaces/{w['id']}/start", a["token"])
        api(berth, "DELETE", f"/api/nodes/{name}", a["admin_token"], ok=(200, 409))
        counts["move"] = moves * 2
    else:
        say(part, "no extra engine (run under scripts/with-nodes for moves): moves not tried")
    if marker_state() != before:
        finding(part, "the marker directory changed")
    api(berth, "POST", f"/api/workspaces/{w['id']}/stop", a["token"])
    api(berth, "DELETE", f"/api/workspaces/{w['id']}", a["token"])
    api(berth, "DELETE", f"/api/projects/{p['id']}?purge=true", a["token"])
    say(part, "tries " + ", ".join(f"{k} {v}" for k, v in counts.items()) +
        f"; marker leaks {sum(leaks.values())}; largest size {most} bytes")
    RESULTS["race"] = {"tries": counts, "leaks": leaks, "largest_size": most}


# ---------------------------------------------------------------- texts

def texts(berth, a):
    """The text rule through the real server: every string field of every
    operation sent what it must refuse."""
    part = "texts"
    with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
        doc = json.load(f)
    schemas = doc["components"]["schemas"]

    def resolve(s):
        while "$ref" in s:
            s = schemas[s["$ref"].split("/")[-1]]
        for key in ("anyOf", "oneOf"):
            if key in s:
                b = [x for x in s[key] if x.get("type") != "null"]
                if b:
                    return resolve(b[0])
        return s

    def is_text(s):
        t = s.get("type")
        t = t if isinstance(t, list) else [t]
        return "string" in t and s.get("format") != "uuid"

    def fields(s, at):
        s = resolve(s)
        if is_text(s):
            yield at, s
            return
        for k, sub in s.get("properties", {}).items():
            yield from fields(sub, at + [k])
        if isinstance(s.get("additionalProperties"), dict):
            yield from fields(s["additionalProperties"], at + ["k"])

    def sample(sch):
        """A value `sch` accepts: required fields only, enums and consts
        as declared (a valid body but for the field under test)."""
        if "$ref" in sch:
            return sample(schemas[sch["$ref"].split("/")[-1]])
        if "const" in sch:
            return sch["const"]
        if "enum" in sch:
            return sch["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in sch:
                b = [x for x in sch[key] if x.get("type") != "null"]
                return sample(b[0]) if b else None
        t = sch.get("type")
        t = next((x for x in t if x != "null"), None) if isinstance(t, list) else t
        if t == "object" or "properties" in sch:
            return {k: sample(sch["properties"][k]) for k in sch.get("required", [])}
        if t == "string":
            return {"uuid": IDS["project"], "date-time": "2026-01-01T00:00:00Z"}.get(sch.get("format"), "ok-value-1")
        if t in ("integer", "number"):
            return max(1, sch.get("minimum", 1))
        if t == "boolean":
            return False
        if t == "array":
            return []
        return None

    def with_field(base, schema, path, v):
        body = json.loads(json.dumps(base))
        cur, s = body, resolve(schema)
        for i, k in enumerate(path):
            sub = s.get("additionalProperties") if k == "k" and "properties" not in s else s["properties"][k]
            if i == len(path) - 1:
                cur[k] = v
                break
            if not isinstance(cur.get(k), dict):
                cur[k] = sample(sub) or {}
            cur, s = cur[k], resolve(sub)
        return body

    def bad(s):
        n = s.get("maxLength", 256)
        return [("CR/LF", "a\r\nSet-Cookie: pwn=1"), ("NUL", "a\u0000b"), ("U+202E", "abc\u202egpj.exe"),
                ("overlong", "x" * (n + 1))]

    IDS = {k: "00000000-0000-4000-8000-000000000000" for k in ("project", "backup", "user", "workspace")}
    cases = wrong = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("head", "options") or path.endswith("/logout"):
                continue
            if op["operationId"].startswith(("proxy", "portProxy")):
                continue
            fill_path = lambda bad_name=None, v=None: "/".join(
                urllib.parse.quote(v, safe="") if seg == "{" + str(bad_name) + "}" else
                ("8080" if seg == "{port}" else "00000000-0000-4000-8000-000000000000" if seg == "{id}"
                 else "nothing-here" if seg.startswith("{") else seg)
                for seg in path.split("/"))
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            base = sample(schema) if schema else None
            todo = []
            for prm in op.get("parameters", []):
                ps = resolve(prm.get("schema", {}))
                if not is_text(ps):
                    continue
                for what, v in bad(ps):
                    if prm["in"] == "query":
                        todo.append((what, prm["name"], fill_path() + "?" + urllib.parse.urlencode({prm["name"]: v}), base))
                    elif prm["in"] == "path":
                        todo.append((what, prm["name"], fill_path(prm["name"], v), base))
            if schema:
                for fpath, fs in fields(schema, []):
                    for what, v in bad(fs):
                        todo.append((what, ".".join(fpath), fill_path(), with_field(base, schema, fpath, v)))
            for what, field, uri, body in todo:
                cases += 1
                s, _, out = request(berth, method.upper(), uri, a["admin_token"], body)
                text = out.decode(errors="replace")
                if s >= 500 or s != 400 or field not in text:
                    wrong += 1
                    finding(part, f"{method.upper()} {path} {field} ({what}): {s} {text[:160]}")
    # Nothing with the marker text was stored.
    stored = [x["name"] for x in api(berth, "GET", "/api/projects", a["admin_token"]) if "pwn" in x["name"]]
    if stored:
        finding(part, f"stored: {stored}")
    say(part, f"{cases} cases, {wrong} answered otherwise than a 400 naming the field")
    RESULTS["texts"] = {"cases": cases, "wrong": wrong}


# ---------------------------------------------------------------- archives

def tar_gz(members):
    """members: list of (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def ti(name, kind=tarfile.REGTYPE, size=0, link="", mode=0o644):
    i = tarfile.TarInfo(name)
    i.type, i.size, i.linkname, i.mode = kind, size, link, mode
    return i


def gz_bomb(mb):
    """A .tar.gz with one file of `mb` MiB of zeros, compressed on the fly."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as g:
        h = ti("zeros", size=mb << 20).tobuf(format=tarfile.GNU_FORMAT)
        g.write(h)
        chunk = b"\0" * (1 << 20)
        for _ in range(mb):
            g.write(chunk)
        g.write(b"\0" * 1024)
    return buf.getvalue()


def long_header(size):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as g:
        h = bytearray(512)
        h[0:13] = b"././@LongLink"
        h[100:108] = b"0000644\0"
        h[124:136] = ("%011o\0" % size).encode()
        h[156] = ord("L")
        h[257:265] = b"ustar  \0"
        h[148:156] = b" " * 8
        h[148:155] = ("%06o\0" % sum(h)).encode()
        g.write(bytes(h))
        chunk = b"a" * (1 << 20)
        for _ in range(size >> 20):
            g.write(chunk)
        g.write(b"\0" * 1024)
    return buf.getvalue()


def archives(berth, a):
    part = "archives"
    sentinel = tempfile.mkdtemp(prefix="berth-attack-outside-")
    rel_out = os.path.relpath(os.path.join(sentinel, "pwned"), "/")
    corpus = [
        ("traversal", tar_gz([(ti("../../../../../../" + rel_out, size=3), b"pwn")]), False),
        ("absolute path", tar_gz([(ti("/" + rel_out, size=3), b"pwn")]), False),
        ("write through a symlink", tar_gz([(ti("l", tarfile.SYMTYPE, link=sentinel), None),
                                            (ti("l/pwned", size=3), b"pwn")]), False),
        ("hard link out", tar_gz([(ti("h", tarfile.LNKTYPE, link="../../../../etc/passwd"), None)]), False),
        ("hard link to nothing", tar_gz([(ti("h", tarfile.LNKTYPE, link="missing"), None)]), False),
        ("device file", tar_gz([(ti("dev", tarfile.CHRTYPE), None)]), False),
        ("gzip bomb", gz_bomb(1200 if FULL else 300), False),
        ("huge long-name header", long_header(256 << 20 if FULL else 64 << 20), False),
        ("truncated", tar_gz([(ti("f", size=100000), os.urandom(100000))])[:5000], False),
        ("wrong magic", b"PK\x03\x04 not a tar at all" * 100, False),
        ("hard link to a symlink", tar_gz([(ti("s", tarfile.SYMTYPE, link="target"), None),
                                           (ti("h", tarfile.LNKTYPE, link="s"), None)]), True),
        ("set-uid file", tar_gz([(ti("suid", size=2, mode=0o4755), b"x\n")]), True),
        ("benign", tar_gz([(ti("dir/", tarfile.DIRTYPE, mode=0o755), None),
                           (ti("dir/a.txt", size=5), b"hello")]), True),
    ]
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "archives"})
    rss_before = berth.rss_kb()
    peak = [rss_before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], berth.rss_kb())
            except OSError:
                pass
            time.sleep(0.02)
    sampler = threading.Thread(target=sample)
    sampler.start()
    outcomes = []
    for name, body, acceptable in corpus:
        s, _, out = request(berth, "POST", f"/api/projects/{p['id']}/backups/upload", a["token"], raw=body,
                            headers={"Content-Type": "application/octet-stream"})
        outcome = f"upload {s}"
        if s == 201:
            bid = json.loads(out)["data"]["id"]
            s2, _, out2 = request(berth, "POST", f"/api/workspaces/projects/{p['id']}/restore", a["token"],
                                  {"backupId": bid, "stopWorkspace": True})
            outcome += f", restore {s2}"
            if not acceptable:
                finding(part, f"{name}: accepted ({outcome})")
            elif s2 != 200:
                finding(part, f"{name}: accepted at upload but restore answered {s2} {out2[:200]!r}")
        elif acceptable:
            finding(part, f"{name}: refused ({s} {out[:200]!r})")
        elif not 400 <= s < 500:
            finding(part, f"{name}: answered {s}, not a 4xx: {out[:200]!r}")
        outcomes.append((name, outcome, len(body)))
    stop.set()
    sampler.join()
    grown = (peak[0] - rss_before) // 1024
    if os.listdir(sentinel):
        finding(part, f"something was written outside the volume: {os.listdir(sentinel)}")
    shutil.rmtree(sentinel, ignore_errors=True)
    bound = 96
    if grown > bound:
        finding(part, f"resident memory grew by {grown} MB (bound {bound} MB)")
    for name, outcome, size in outcomes:
        say(part, f"{name} ({size} bytes): {outcome}")
    say(part, f"server RSS {rss_before // 1024} MB before, peak {peak[0] // 1024} MB (+{grown} MB)")
    RESULTS["archives"] = {"cases": len(corpus), "rss_before_mb": rss_before // 1024,
                           "rss_peak_mb": peak[0] // 1024, "outcomes": outcomes}


# ---------------------------------------------------------------- csrf, throttle

def login(berth, email, password, headers=None):
    return request(berth, "POST", "/api/auth/login", body={"email": email, "password": password}, headers=headers)


def csrf(berth, a):
    part = "csrf"
    s, h, out = login(berth, a["email"], a["password"])
    session = json.loads(out)["data"]["accessToken"]
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "csrf"})
    w = api(berth, "POST", "/api/workspaces", a["token"], {"name": "csrf", "type": "box", "projectId": p["id"]})
    api(berth, "POST", f"/api/workspaces/{w['id']}/start", a["token"])
    cookie = {"Cookie": f"berth_session={session}"}
    cases = [
        ("another port of this host", {"Origin": "http://127.0.0.1:1"}, 403),
        ("another site", {"Origin": "http://evil.example"}, 403),
        ("no Origin at all", {}, 403),
        ("Sec-Fetch-Site: same-site", {"Sec-Fetch-Site": "same-site"}, 403),
        ("Berth's own page", {"Origin": berth.base}, 200),
    ]
    for path in (f"/api/workspaces/{w['id']}/restart", f"/api/workspaces/{w['id']}/stop",
                 f"/api/workspaces/projects/{p['id']}/backup"):
        for name, extra, want in cases:
            s, _, out = request(berth, "POST", path, headers={**cookie, **extra})
            if (want == 200 and not 200 <= s < 300) or (want == 403 and s != 403):
                finding(part, f"POST {path} from {name}: {s}, wanted {want}")
    say(part, f"{3 * len(cases)} cookie-authenticated changes from 5 origins checked")
    RESULTS["csrf"] = {"requests": 3 * len(cases)}


def throttle(berth, users):
    part = "throttle"
    victim, other = users[0], users[1]
    # Timing first, below the lock: failed logins for known and unknown
    # emails, interleaved, four per account (the lock starts at five).
    samples = {"known": [], "unknown": []}
    for u in users[2:]:
        ghost = "nobody-" + os.urandom(3).hex() + "@example.com"
        for i in range(4):
            for kind, email in (("known", u["email"]), ("unknown", ghost)):
                t0 = time.time()
                s, _, _ = login(berth, email, "wrong-" + str(i))
                samples[kind].append(time.time() - t0)
                if s != 401:
                    finding(part, f"{kind} email: wrong password answered {s}")
    med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in samples.items()}
    if abs(med["known"] - med["unknown"]) > 0.25 * max(med.values()):
        finding(part, f"a failed login takes {med['known']:.0f} ms for a known email and "
                      f"{med['unknown']:.0f} ms for an unknown one: they can be told apart")
    for email in (victim["email"], "nobody-" + os.urandom(3).hex() + "@example.com"):
        for i in range(5):
            s, _, _ = login(berth, email, "wrong-" + str(i))
            if s != 401:
                finding(part, f"{email}: wrong password {i} answered {s}")
        right = victim["password"] if email == victim["email"] else "whatever"
        s, h, _ = login(berth, email, right)
        if s != 429 or "retry-after" not in {k.lower() for k in h}:
            finding(part, f"{email}: after 5 failures answered {s} (want 429 with Retry-After)")
    s, _, _ = login(berth, other["email"], other["password"])
    if s != 200:
        finding(part, f"another account could not log in: {s}")
    say(part, f"locked after 5 failures, known and unknown emails alike; a failed login takes "
              f"{med['known']:.0f} ms (median) for a known email, {med['unknown']:.0f} ms for an "
              f"unknown one ({len(samples['known'])} each, interleaved); other accounts unaffected")
    RESULTS["throttle"] = {"known_ms": round(med["known"]), "unknown_ms": round(med["unknown"])}


# ---------------------------------------------------------------- load

def load(berth, a):
    part = "load"
    if not shutil.which("wrk"):
        finding(part, "wrk is not installed (scripts/attack installs Debian's wrk)")
        return
    duration = 30 if FULL else 8
    conns = 100 if FULL else 24
    sse = 20 if FULL else 5
    p = api(berth, "POST", "/api/projects", a["token"], {"name": "load"})
    w = api(berth, "POST", "/api/workspaces", a["token"], {"name": "load", "type": "box", "projectId": p["id"]})
    api(berth, "POST", f"/api/workspaces/{w['id']}/start", a["token"])
    time.sleep(2)
    before = (berth.rss_kb() // 1024, berth.fds())
    streams, stop = [], threading.Event()

    def follow(path):
        try:
            c = http.client.HTTPConnection("127.0.0.1", berth.port, timeout=duration + 30)
            c.request("GET", path, headers={"Authorization": f"Bearer {a['token']}"})
            r = c.getresponse()
            while not stop.is_set():
                if not r.readline():
                    break
            c.close()
        except OSError:
            pass
    for i in range(sse):
        path = f"/api/workspaces/{w['id']}/logs/stream" if i % 2 == 0 else f"/api/workspaces/{w['id']}/stats/stream?interval=1"
        t = threading.Thread(target=follow, args=(path,))
        t.start()
        streams.append(t)
    targets = {
        "status": f"/api/workspaces/{w['id']}/status",
        "list": "/api/workspaces",
        "logs tail": f"/api/workspaces/{w['id']}/logs?tail=20",
        "stats": f"/api/workspaces/{w['id']}/stats",
    }
    during = [before]
    procs = {}
    for name, path in targets.items():
        procs[name] = subprocess.Popen(
            ["wrk", "-t", "1", "-c", str(conns // len(targets)), "-d", f"{duration}s", "--latency",
             "-H", f"Authorization: Bearer {a['token']}", berth.base + path],
            stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    while any(pr.poll() is None for pr in procs.values()):
        if time.time() - t0 > duration / 2 and len(during) == 1:
            during.append((berth.rss_kb() // 1024, berth.fds()))
        time.sleep(0.5)
    stop.set()
    for t in streams:
        t.join(timeout=10)
    time.sleep(2)
    after = (berth.rss_kb() // 1024, berth.fds())
    results = {}
    for name, pr in procs.items():
        out = pr.stdout.read()
        lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
        rps = re.search(r"Requests/sec:\s+(\S+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errs = re.search(r"Socket errors: (.*)", out)
        results[name] = {"p50": lat.get("50"), "p99": lat.get("99"), "rps": rps.group(1) if rps else None,
                         "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errs.group(1) if errs else None}
        if results[name]["non2xx"] or errs:
            finding(part, f"{name}: {results[name]['non2xx']} non-2xx, socket errors {results[name]['socket_errors']}")
        say(part, f"{name}: p50 {lat.get('50')} p99 {lat.get('99')}, {results[name]['rps']} req/s, "
                  f"{results[name]['non2xx']} errors")
    mid = during[-1]
    say(part, f"{conns} connections for {duration} s with {sse} SSE streams: server RSS {before[0]} / {mid[0]} / "
              f"{after[0]} MB and open fds {before[1]} / {mid[1]} / {after[1]} (before / during / after)")
    if after[1] > before[1] + 10:
        finding(part, f"open file descriptors grew from {before[1]} to {after[1]} after the run")
    RESULTS["load"] = {"connections": conns, "seconds": duration, "sse": sse, "targets": results,
                       "rss_mb": [before[0], mid[0], after[0]], "fds": [before[1], mid[1], after[1]]}


def main():
    parts = [p for p in os.environ.get("ATTACK_PARTS", "matrix,kill,race,texts,archives,csrf,throttle,load").split(",") if p]
    berth = Berth()
    try:
        admin = berth.user("admin@example.com", admin=True)
        a = berth.user("a@example.com")
        a["admin_token"] = admin["token"]
        b = berth.user("b@example.com")
        c = berth.user("c@example.com")
        timing = [berth.user(f"t{i}@example.com") for i in range(4)]
        berth.start()
        say("setup", f"{'full' if FULL else 'quick'} run against {berth.base} ({BIN})")
        if "matrix" in parts:
            matrix(berth, a, b)
        if "kill" in parts:
            kill_suite(berth, a)
        if "race" in parts:
            race(berth, a)
        if "texts" in parts:
            texts(berth, a)
        if "archives" in parts:
            archives(berth, a)
        if "csrf" in parts:
            csrf(berth, a)
        if "throttle" in parts:
            throttle(berth, [c, b, *timing])
        if "load" in parts:
            load(berth, a)
    finally:
        berth.cleanup()
        shutil.rmtree(MARKER_DIR, ignore_errors=True)
    out = os.path.join(ROOT, "target", "attack")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"full": FULL, "results": RESULTS, "findings": FINDINGS}, f, indent=2)
    if FINDINGS:
        print(f"attack: {len(FINDINGS)} finding(s):", file=sys.stderr)
        for x in FINDINGS:
            print("  " + x, file=sys.stderr)
        sys.exit(1)
    print("attack: no findings", flush=True)


if __name__ == "__main__":
    main()
