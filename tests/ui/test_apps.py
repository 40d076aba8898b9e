"""Workspace apps in a real browser (headless Chromium driven by Selenium)
against two real Berth servers started by scripts/apps-test: one serving
apps on their own origins (`proxy.app_domain = "localhost"`), one in path
mode. The apps are a real JupyterLab and the berth-echo fixture.

- JupyterLab in both modes, with no shim: the Lab UI loads, a terminal
  (a WebSocket) runs a command, a notebook kernel evaluates 6*7 to 42, a
  file saved in the editor survives stop/start and a backup, its deletion
  and a restore.
- The login handoff: an unauthenticated visit to an app origin goes to
  Berth's login and comes back to the app.
- Isolation, from a page the workspace serves: on an app origin it gets no
  Berth identity (it can neither read Berth's answers nor mint a token),
  sees none of Berth's cookies, and a cookie it sets reaches neither Berth
  nor another workspace; in path mode an admin opening a member's app is
  refused, and the app cannot set Berth's session cookie.
- Logout ends the app cookie.

Screenshots of each step go to $BERTH_SHOTS.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

APPS = os.environ["BERTH_APPS_URL"]
PATH = os.environ["BERTH_PATH_URL"]
TOKENS = {
    (APPS, "admin"): os.environ["BERTH_APPS_ADMIN_TOKEN"],
    (APPS, "member"): os.environ["BERTH_APPS_MEMBER_TOKEN"],
    (PATH, "admin"): os.environ["BERTH_PATH_ADMIN_TOKEN"],
    (PATH, "member"): os.environ["BERTH_PATH_MEMBER_TOKEN"],
}
PASSWORDS = {
    "admin": os.environ["BERTH_ADMIN_PASSWORD"],
    "member": os.environ["BERTH_MEMBER_PASSWORD"],
}
SHOTS = os.environ.get("BERTH_SHOTS", "target/ui-shots")
SHOT_N = [0]


def step(msg):
    print(f"apps-test: {msg}", flush=True)


def shot(d, name):
    SHOT_N[0] += 1
    d.save_screenshot(os.path.join(SHOTS, f"apps-{SHOT_N[0]:02d}-{name}.png"))


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def api(base, who, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKENS[(base, who)]}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["data"]


def wait_until(what, secs, f):
    deadline = time.time() + secs
    while True:
        v = f()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def healthy(base, who, wid):
    return api(base, who, "GET", f"/api/workspaces/{wid}/health")["status"] == "healthy"


def new_workspace(base, who, name, type_name):
    p = api(base, who, "POST", "/api/projects", {"name": name})
    w = api(base, who, "POST", "/api/workspaces", {"name": name, "type": type_name, "projectId": p["id"]})
    api(base, who, "POST", f"/api/workspaces/{w['id']}/start")
    wait_until(f"{name} healthy", 180, lambda: healthy(base, who, w["id"]))
    return api(base, who, "GET", f"/api/workspaces/{w['id']}"), p


def log_in(d, wait, who):
    form = wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    form.find_element(By.NAME, "email").send_keys(f"{who}@example.com")
    form.find_element(By.NAME, "password").send_keys(PASSWORDS[who])
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def fetch(d, url, method="GET", body=None):
    """A request from the current page's context (its origin, its cookies,
    Jupyter's XSRF header): (status, text)."""
    return d.execute_async_script(
        """
        const [url, method, body, done] = arguments;
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1];
        const headers = {};
        if (xsrf) headers["X-XSRFToken"] = decodeURIComponent(xsrf);
        if (body !== null) headers["Content-Type"] = "application/json";
        // No browser cache, as JupyterLab's own client asks ("no-store"):
        // Jupyter answers the contents API with Last-Modified and no
        // Cache-Control, so Chromium may answer a repeated GET from its
        // heuristic cache (a deleted file then seems to be still there).
        fetch(url, { method, headers, credentials: "include", cache: "no-store",
                     body: body === null ? undefined : JSON.stringify(body) })
          .then(async (r) => done([r.status, await r.text()]))
          .catch((e) => done([0, String(e)]));
        """,
        url, method, body,
    )


def lab_loaded(d, wait):
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-LauncherCard")))


def open_launcher(d, wait):
    """A fresh launcher tab: the "+" of the main area's tab bar (or of the
    file browser)."""
    buttons = d.find_elements(By.CSS_SELECTOR, "#jp-main-dock-panel .lm-TabBar-addButton") + \
        d.find_elements(By.CSS_SELECTOR, "[data-command='launcher:create']")
    next(b for b in buttons if b.is_displayed()).click()
    wait.until(lambda d: [c for c in d.find_elements(By.CSS_SELECTOR, ".jp-LauncherCard") if c.is_displayed()])


def card(d, wait, label):
    def find(d):
        for c in d.find_elements(By.CSS_SELECTOR, ".jp-LauncherCard"):
            if c.is_displayed() and label in (c.text or "") + (c.get_attribute("title") or ""):
                return c
        return None
    return wait.until(find)


def jupyter_flow(d, wait, base, ws, prefix_url):
    """The Lab UI is loaded in `d`; `prefix_url` is the app's prefix on the
    page's origin (for Jupyter's REST API)."""
    step("a terminal runs a command (over a WebSocket)")
    card(d, wait, "Terminal").click()
    area = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-Terminal .xterm-helper-textarea")))
    time.sleep(2)
    area.send_keys("echo from-the-terminal-$((6*7)) > /workspace/terminal.txt\n")
    status, text = wait_until("the terminal's file", 30, lambda: (
        lambda r: r if r[0] == 200 else None)(fetch(d, prefix_url + "api/contents/terminal.txt?content=1")))
    assert json.loads(text)["content"].strip() == "from-the-terminal-42", text
    shot(d, "terminal")

    step("a notebook kernel evaluates 6*7")
    open_launcher(d, wait)
    card(d, wait, "Python 3").click()
    editor = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .cm-content")))
    # The kernel must be idle before the cell runs.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
               or "Idle" in d.find_element(By.CSS_SELECTOR, "body").text)
    editor.click()
    editor.send_keys("6*7")
    # Run the cell; a kernel still connecting may drop the first request
    # (the cell stays "[ ]"), so run it again until it answers.
    def answered(d):
        return any(o.text.strip() == "42" for o in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
    for attempt in range(6):
        first = d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .cm-content")[0]
        first.click()
        ActionChains(d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        try:
            WebDriverWait(d, 15).until(answered)
            break
        except Exception:
            step(f"the kernel did not answer yet (attempt {attempt + 1}); running the cell again")
    assert answered(d), "the kernel never evaluated 6*7"
    shot(d, "notebook")

    step("a file saved in the editor")
    open_launcher(d, wait)
    card(d, wait, "Text File").click()
    editor = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-FileEditor .cm-content")))
    editor.click()
    editor.send_keys("kept by berth\n")
    ActionChains(d).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    # JupyterLab asks for a name when an untitled file is first saved.
    try:
        dialog = WebDriverWait(d, 5).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-Dialog input")))
        dialog.send_keys(Keys.CONTROL, "a")
        dialog.send_keys("kept.txt")
        d.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()
        name = "kept.txt"
    except Exception:
        name = "untitled.txt"
    got = wait_until("the saved file", 30, lambda: (
        lambda r: r if r[0] == 200 and "kept by berth" in r[1] else None)(
            fetch(d, prefix_url + f"api/contents/{name}?content=1")))
    shot(d, "editor")
    return name


def file_content(d, prefix_url, name):
    status, text = fetch(d, prefix_url + f"api/contents/{name}?content=1")
    return json.loads(text)["content"] if status == 200 else None


def reload_lab(d, wait, url):
    def loaded(d):
        d.get(url)
        try:
            WebDriverWait(d, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-LabShell")))
            return True
        except Exception:
            return False
    WebDriverWait(d, 120, poll_frequency=2).until(loaded)


def subdomain_mode(d, wait):
    step("subdomain mode: a JupyterLab workspace")
    ws, project = new_workspace(APPS, "admin", "lab", "jupyter")
    app = ws["appUrl"]
    assert app.startswith("http://lab--") and ".localhost:" in app, app
    prefix = f"/api/workspaces/{ws['id']}/proxy/"

    step("an unauthenticated visit goes to Berth's login and comes back to the app")
    d.get(app)
    wait.until(ec.url_contains("#/login?next="))
    assert d.current_url.startswith(APPS), d.current_url
    shot(d, "handoff-login")
    log_in(d, wait, "admin")
    WebDriverWait(d, 60).until(lambda d: d.current_url.startswith(app.rstrip("/")) and "/lab" in d.current_url)
    lab_loaded(d, wait)
    shot(d, "lab-subdomain")
    cookies = {c["name"]: c for c in d.get_cookies()}
    assert "berth_app" in cookies and cookies["berth_app"]["httpOnly"], cookies
    assert "berth_session" not in cookies, "Berth's session cookie reached the app origin"

    name = jupyter_flow(d, wait, APPS, ws, prefix)

    step("the file survives a stop and a start")
    api(APPS, "admin", "POST", f"/api/workspaces/{ws['id']}/stop")
    api(APPS, "admin", "POST", f"/api/workspaces/{ws['id']}/start")
    wait_until("healthy again", 180, lambda: healthy(APPS, "admin", ws["id"]))
    reload_lab(d, wait, app)
    assert "kept by berth" in (file_content(d, prefix, name) or ""), "lost after stop/start"

    step("…and a backup, its deletion and a restore")
    b = api(APPS, "admin", "POST", f"/api/workspaces/projects/{project['id']}/backup", {})
    assert b["state"] == "complete", b
    # A Lab without the file's editor first (`?reset`: the saved layout is
    # not restored), so nothing of the Lab's holds the file and saves it
    # again. (Not a contents API page: Jupyter serves those with CSP
    # default-src 'none', which blocks a fetch from them.)
    d.get(app.rstrip("/") + prefix + "lab?reset")
    lab_loaded(d, wait)
    status, text = fetch(d, prefix + f"api/contents/{name}", "DELETE")
    assert status == 204, (status, text)
    assert file_content(d, prefix, name) is None
    api(APPS, "admin", "POST", f"/api/workspaces/projects/{project['id']}/restore",
        {"backupId": b["id"], "stopWorkspace": True})
    api(APPS, "admin", "POST", f"/api/workspaces/{ws['id']}/start")
    wait_until("healthy after the restore", 180, lambda: healthy(APPS, "admin", ws["id"]))
    reload_lab(d, wait, app)
    assert "kept by berth" in (file_content(d, prefix, name) or ""), "not restored"
    shot(d, "lab-restored")

    step("Berth's own UI opens the app on its origin")
    d.get(APPS + "/#/")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{ws['id']}']")))
    link = d.find_element(By.CSS_SELECTOR, f"tr[data-id='{ws['id']}'] a.button.primary")
    assert link.get_attribute("href") == app, link.get_attribute("href")
    d.get(APPS + f"/#/ws/{ws['id']}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#ports-table tr[data-port='8888']")))
    shot(d, "workspace-ports")
    return ws


def isolation_on_app_origins(d, wait):
    step("isolation: a member's workspace serves a hostile page on its origin")
    ws, _ = new_workspace(APPS, "member", "echo", "echo")
    other, _ = new_workspace(APPS, "member", "other", "echo")
    d.get(APPS + "/")
    d.delete_all_cookies()
    d.get(APPS + "/")
    log_in(d, wait, "member")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Workspaces"))
    tokens_before = api(APPS, "member", "GET", "/api/auth/tokens")

    d.get(ws["appUrl"] + "set-cookie?c=" + urllib.parse.quote("mark=from-a; Path=/"))
    d.get(ws["appUrl"] + "page.html?berth=" + urllib.parse.quote(APPS))
    out = json.loads(WebDriverWait(d, 30).until(
        lambda d: (lambda t: t if t.startswith("{") else None)(d.find_element(By.ID, "out").text)))
    shot(d, "hostile-page-app-origin")
    # No Berth identity: Berth's answers cannot be read, and its session
    # cookie is not sent from another site (so nothing is minted).
    assert out["me"] == "blocked", out
    assert out["mint"] == "blocked", out
    assert out["blind"] == "sent", out
    # On the app origin, /api/auth/me is the app's own path.
    assert out["sameOrigin"] == "200 /api/auth/me", out
    assert "berth_" not in out["cookies"], out
    assert "mark=from-a" in out["cookies"], out
    tokens_after = api(APPS, "member", "GET", "/api/auth/tokens")
    assert len(tokens_after) == len(tokens_before), (tokens_before, tokens_after)
    assert not [t for t in tokens_after if t["name"].startswith("stolen")], tokens_after

    step("a cookie set by workspace A reaches neither workspace B nor Berth")
    d.get(other["appUrl"] + "page.html?berth=" + urllib.parse.quote(APPS))
    out_b = json.loads(WebDriverWait(d, 30).until(
        lambda d: (lambda t: t if t.startswith("{") else None)(d.find_element(By.ID, "out").text)))
    assert "mark" not in out_b["cookies"], out_b
    d.get(ws["appUrl"] + "echo")
    seen = json.loads(d.find_element(By.TAG_NAME, "body").text)
    assert seen["headers"]["cookie"] == ["mark=from-a"], seen["headers"]

    step("after logging out of Berth, the app cookie no longer works")
    d.get(APPS + "/#/")
    wait.until(ec.presence_of_element_located((By.ID, "logout")))
    wait.until(ec.visibility_of_element_located((By.ID, "logout"))).click()
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    d.get(ws["appUrl"] + "echo")
    wait.until(ec.url_contains("#/login?next="))
    shot(d, "app-after-logout")

    step("the member shares a port; an admin sees the share and revokes it")
    api(APPS, "member", "PUT", f"/api/workspaces/{ws['id']}/shares/5173", {"level": "authenticated"})
    d.get(APPS + "/")
    d.delete_all_cookies()
    d.get(APPS + "/")
    log_in(d, wait, "admin")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Workspaces"))
    d.find_element(By.ID, "nav-users").click()
    row = f"#shares tr[data-share-ws='{ws['id']}'][data-share-port='5173']"
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert "member@example.com" in d.find_element(By.CSS_SELECTOR, row).text
    shot(d, "admin-shares")
    d.find_element(By.CSS_SELECTOR, row + " button[data-act=share-revoke]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "no longer shared"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    ports = api(APPS, "member", "GET", f"/api/workspaces/{ws['id']}/ports")
    assert [p["share"] for p in ports if p["port"] == 5173] == ["owner"], ports


def path_mode(d, wait):
    step("path mode: a JupyterLab workspace under its prefix, no shim")
    ws, _ = new_workspace(PATH, "member", "lab", "jupyter")
    prefix = f"/api/workspaces/{ws['id']}/proxy/"
    assert ws["appUrl"] == PATH + prefix, ws["appUrl"]
    d.get(PATH + "/")
    d.delete_all_cookies()
    d.get(PATH + "/")
    log_in(d, wait, "member")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Workspaces"))
    d.find_element(By.CSS_SELECTOR, f"tr[data-id='{ws['id']}'] a.button.primary").click()
    d.switch_to.window(d.window_handles[-1])
    WebDriverWait(d, 60).until(lambda d: (prefix + "lab") in d.current_url)
    lab_loaded(d, wait)
    shot(d, "lab-path")
    jupyter_flow(d, wait, PATH, ws, prefix)
    d.close()
    d.switch_to.window(d.window_handles[0])

    step("path mode: the app cannot set Berth's session cookie")
    echo, _ = new_workspace(PATH, "member", "echo", "echo")
    before = {c["name"]: c["value"] for c in d.get_cookies()}
    d.get(PATH + f"/api/workspaces/{echo['id']}/proxy/set-cookie?c="
          + urllib.parse.quote("berth_session=evil; Path=/") + "&c=" + urllib.parse.quote("mark=p; Path=/"))
    after = {c["name"]: c for c in d.get_cookies()}
    assert after["berth_session"]["value"] == before["berth_session"], "the app replaced Berth's cookie"
    assert after["mark"]["path"] == f"/api/workspaces/{echo['id']}/proxy/", after["mark"]
    d.get(PATH + "/")
    status, _ = fetch(d, "/api/auth/me")
    assert status == 200, status

    step("path mode: an admin opening the member's app is refused")
    d.delete_all_cookies()
    d.get(PATH + "/")
    log_in(d, wait, "admin")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Workspaces"))
    d.get(PATH + f"/api/workspaces/{echo['id']}/proxy/page.html")
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "This app is not opened here"))
    assert "echo page" not in d.title
    shot(d, "path-admin-refused")


def main():
    d = browser()
    wait = WebDriverWait(d, 90)
    # APPS_TEST_ONLY=isolation,path runs some parts only (while debugging).
    only = [p for p in os.environ.get("APPS_TEST_ONLY", "").split(",") if p]
    parts = [("subdomain", subdomain_mode), ("isolation", isolation_on_app_origins), ("path", path_mode)]
    try:
        for name, part in parts:
            if not only or name in only:
                part(d, wait)
    except Exception:
        shot(d, "failure")
        print(d.current_url, file=sys.stderr)
        print(d.page_source[:3000], file=sys.stderr)
        for e in d.get_log("browser"):
            print("console:", e, file=sys.stderr)
        raise
    finally:
        d.quit()
    step("all steps passed")


if __name__ == "__main__":
    main()
