"""The web UI, end to end, in a real browser (headless Chromium driven by
Selenium) against a real Berth server, the local Docker engine and a fresh
SQLite database. Run by scripts/ui-test, which starts the server and passes
BERTH_URL, BERTH_EMAIL and BERTH_PASSWORD.

The flow a new user takes: log in, create a workspace (and its project),
start it, watch its live figures, open it through the proxy, back up its
project; an admin's users page and jobs; your own tokens and password; log
out. Any error in the browser's console (a Content-Security-
Policy violation, a script error) fails the run.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["BERTH_URL"]
# Set when the server serves apps on their own origins (scripts/replicas-
# test): opening a workspace then goes through the login handoff to
# <name>--<id>.<domain>, on Berth's port.
APP_DOMAIN = os.environ.get("BERTH_APP_DOMAIN", "")
EMAIL = os.environ["BERTH_EMAIL"]
PASSWORD = os.environ["BERTH_PASSWORD"]
NEW_PASSWORD = PASSWORD + "-changed"
SHOTS = os.environ.get("BERTH_SHOTS", "target/ui-shots")
SHOT_N = [0]


def shot(d, name):
    """A screenshot of the page for a reviewer (target/ui-shots/)."""
    os.makedirs(SHOTS, exist_ok=True)
    SHOT_N[0] += 1
    d.save_screenshot(os.path.join(SHOTS, f"ui-{SHOT_N[0]:02d}-{name}.png"))


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def points(d, css):
    """How many points the chart's polyline has, and its last value's y.

    Read in one script: the live page redraws its charts on every sample,
    so an element found in one WebDriver call may be gone by the next
    (StaleElementReferenceException, seen once in CI)."""
    n, last = d.execute_script(
        "const el = document.querySelector(arguments[0]);"
        "if (!el) return [0, null];"
        "const pts = (el.getAttribute('points') || '').trim().split(' ').filter(Boolean);"
        "return [Number(el.getAttribute('data-points') || 0),"
        " pts.length ? Number(pts[pts.length - 1].split(',')[1]) : null];",
        css)
    return int(n), last


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1300,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def step(msg):
    print(f"ui-test: {msg}", flush=True)


def main():
    d = browser()
    wait = WebDriverWait(d, 30)
    try:
        run(d, wait)
    except Exception:
        print(d.page_source[:4000], file=sys.stderr)
        for e in d.get_log("browser"):
            print("console:", e, file=sys.stderr)
        raise
    finally:
        # The browser also logs the statuses the flow provokes on purpose:
        # 401s (before login, a wrong password, after logout) and the proxy's
        # 503 "starting" page while a stopped workspace wakes.
        def expected(e):
            m = e["message"]
            return e["source"] == "network" and (
                ("/api/auth/" in m and " 401 " in m) or ("/proxy/" in m and " 503 " in m)
                or (APP_DOMAIN and f".{APP_DOMAIN}:" in m and " 503 " in m)
                # The workspace's own page has no icon (busybox httpd).
                or (APP_DOMAIN and f".{APP_DOMAIN}:" in m and "/favicon.ico" in m and " 404 " in m)
            )

        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and not expected(e)]
        d.quit()
    assert not errors, f"errors in the browser console: {errors}"
    step("all steps passed")


def text_of(d, css):
    """The element's text, found and read in one script: the live pages
    redraw their rows on every sample, so an element found in one WebDriver
    call may be stale in the next (a CI run read the overview's row so)."""
    text = d.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)
    assert text is not None, f"nothing matches {css}"
    return text


def run(d, wait):
    step("the page asks for a login, showing nothing that needs one and calling nothing that fails")
    d.get(BASE + "/")
    wait.until(ec.url_contains("#/login"))
    form = wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    assert not d.find_element(By.ID, "nav").is_displayed(), "the navigation shows before login"
    failing = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not failing, f"the login page made failing calls: {failing}"
    shot(d, "login")

    step("a wrong password is refused with the server's message")
    form.find_element(By.NAME, "email").send_keys(EMAIL)
    form.find_element(By.NAME, "password").send_keys("wrong-password")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "invalid email or password"))

    step("log in")
    pw = form.find_element(By.NAME, "password")
    pw.clear()
    pw.send_keys(PASSWORD)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Workspaces"))
    assert EMAIL in text_of(d, "#who")
    assert "No workspaces yet" in text_of(d, "#ws-table")

    step("create a workspace with a new project")
    create = d.find_element(By.ID, "ws-create")
    create.find_element(By.NAME, "name").send_keys("ui-demo")
    Select(create.find_element(By.NAME, "type")).select_by_value("shell")
    create.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "ws-table"), "ui-demo"))
    row = d.find_element(By.CSS_SELECTOR, "#ws-table tbody tr[data-id]")
    ws_id = row.get_attribute("data-id")
    assert "stopped" in row.text, row.text

    step("start it")
    row.find_element(By.CSS_SELECTOR, "button[data-act=start]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"tr[data-id='{ws_id}']"), "running"))

    step("its page shows live figures from the stats stream")
    d.find_element(By.LINK_TEXT, "ui-demo").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "mem"), "MB"))
    assert "%" in text_of(d, "#cpu") or text_of(d, "#cpu") == "–"
    assert text_of(d, "#pids") not in ("", "–")

    step("its charts draw the live figures, and move when the workspace works")
    container = f"berth-ws-{ws_id}"
    WebDriverWait(d, 30).until(lambda d: points(d, "#chart-mem polyline")[0] >= 2)
    n_before, _ = points(d, "#chart-cpu polyline")
    # Busy for a few seconds inside the workspace.
    subprocess.Popen(["docker", "exec", container, "sh", "-c",
                      "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
    WebDriverWait(d, 40, poll_frequency=1).until(
        lambda d: points(d, "#chart-cpu polyline")[0] > n_before + 1
        and d.execute_script(
            "const p = document.querySelector('#chart-cpu polyline').getAttribute('points').trim().split(' ');"
            "return Math.min(...p.map(x => +x.split(',')[1]));") < 120)
    limit_lines = d.find_elements(By.CSS_SELECTOR, "#chart-mem line.limit")
    assert len(limit_lines) == 2, "the memory chart draws its limit and its reservation"
    assert d.find_elements(By.CSS_SELECTOR, "#chart-net polyline[data-series=received]")
    shot(d, "workspace-charts")

    step("the logs pane filters lines, shows colours, follows and pauses")
    assert "No output yet" in text_of(d, "#logs") or text_of(d, "#logs")
    docker("exec", container, "sh", "-c",
           "printf 'plain line\\n\\033[31mred alert\\033[0m\\nanother plain\\n' > /proc/1/fd/1")
    wait.until(ec.text_to_be_present_in_element((By.ID, "logs"), "red alert"))
    assert d.find_elements(By.CSS_SELECTOR, "#logs .ansi-red"), "ANSI red is shown as a colour"
    filt = d.find_element(By.ID, "log-filter")
    filt.send_keys("red")
    wait.until(lambda d: "plain line" not in text_of(d, "#logs") and "red alert" in text_of(d, "#logs"))
    filt.clear()
    filt.send_keys("zzz-nothing")
    wait.until(ec.text_to_be_present_in_element((By.ID, "logs"), "No line matches"))
    filt.clear()
    filt.send_keys(" ")
    filt.clear()
    d.find_element(By.ID, "log-follow").click()
    assert d.find_element(By.ID, "log-follow").text == "Follow"
    d.find_element(By.ID, "log-follow").click()
    assert d.find_element(By.ID, "log-download").get_attribute("href").endswith("logs?tail=all")
    shot(d, "workspace-logs")

    step("its limits change live")
    limits = d.find_element(By.ID, "limits")
    mem = limits.find_element(By.NAME, "memory")
    mem.clear()
    mem.send_keys("96")
    limits.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "limits applied"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "mem"), "of 96 MB"))

    step("the proxy serves the workspace's own page with the session cookie")
    WebDriverWait(d, 60, poll_frequency=1).until(
        lambda d: (d.get(f"{BASE}/api/workspaces/{ws_id}/proxy/") or True)
        and "berth busybox workspace" in d.page_source
    )

    step("back up its project")
    d.get(BASE + "/#/projects")
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, "ui-demo"))).click()
    form = wait.until(ec.presence_of_element_located((By.ID, "backup-create")))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "backup complete"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "backups"), "complete"))
    size = d.find_element(By.CSS_SELECTOR, "#backups tbody tr td.nowrap")
    assert "\n" not in size.text and size.text.endswith("B"), repr(size.text)
    shot(d, "project-backups")
    d.find_element(By.CSS_SELECTOR, "#backups button[data-act=verify]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "checksum matches"))

    step("the list draws sparklines and follows status without a reload")
    d.get(BASE + "/#/")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{ws_id}']")))
    WebDriverWait(d, 30).until(
        lambda d: points(d, f"tr[data-id='{ws_id}'] [data-cell=cpu] svg")[0] >= 2)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"tr[data-id='{ws_id}'] [data-cell=health]"), "healthy"))
    row_text = d.execute_script(
        "return document.querySelector(arguments[0]).innerText;", f"tr[data-id='{ws_id}']")
    assert f"#{ws_id[:8]}" in row_text, "workspaces of one name are told apart by their id"
    shot(d, "workspaces")
    d.execute_script("window.__noReload = true;")
    status = d.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST'}).then(r => done(r.status));",
        f"/api/workspaces/{ws_id}/stop")
    assert status == 200, status
    wait.until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f"tr[data-id='{ws_id}'] [data-cell=status]"), "stopped"))
    assert d.execute_script("return window.__noReload === true"), "the page reloaded"
    d.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST'}).then(r => done(r.status));",
        f"/api/workspaces/{ws_id}/start")
    wait.until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f"tr[data-id='{ws_id}'] [data-cell=status]"), "running"))
    assert d.execute_script("return window.__noReload === true"), "the page reloaded"

    step("an admin's overview shows every running workspace")
    d.find_element(By.ID, "nav-overview").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#overview tr[data-id='{ws_id}']")))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"#overview tr[data-id='{ws_id}']"), "MB"))
    assert EMAIL in text_of(d, f"#overview tr[data-id='{ws_id}']")
    d.find_element(By.CSS_SELECTOR, "#overview th[data-sort=mem]").click()
    shot(d, "overview")

    step("…and the nodes: the local engine ready, running this workspace, cordoned and back")
    node = "#nodes tr[data-node='local']"
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{node} [data-cell=state]"), "ready"))
    row = text_of(d, node)
    assert "default" in row and "MB" in row, row
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{node} button[data-act=node-cordon]"))).click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{node} [data-cell=state]"), "cordoned"))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{node} button[data-act=node-cordon]"))).click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{node} [data-cell=state]"), "ready"))

    step("stop it from the list")
    d.get(BASE + "/#/")
    # The live stream redraws the row's buttons as the state changes: look
    # the button up when it is clicked.
    stop = f"tr[data-id='{ws_id}'] button[data-act=stop]"
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{ws_id}'] [data-cell=health] .badge")))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, stop))).click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"tr[data-id='{ws_id}']"), "stopped"))

    step("an admin sees the jobs and what cleanup would do")
    d.find_element(By.ID, "nav-jobs").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#jobs tr[data-job='orphaned-volumes']")))
    d.find_element(By.CSS_SELECTOR, "button[data-act=cleanup-dry]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "report"), "Dry run"))
    d.find_element(By.CSS_SELECTOR, "#jobs tr[data-job='inactive'] button[data-act=job-dry]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "report"), "Dry run"))

    step("an admin adds a user, makes them admin, resets their password, removes them")
    d.find_element(By.ID, "nav-users").click()
    form = wait.until(ec.presence_of_element_located((By.ID, "user-form")))
    form.find_element(By.NAME, "email").send_keys("dev@example.com")
    form.find_element(By.NAME, "password").send_keys("dev-password")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "added dev@example.com"))
    dev = "#users tr[data-email='dev@example.com']"
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, dev)))
    assert "member" in row.text, row.text
    row.find_element(By.CSS_SELECTOR, "button[data-act=user-role]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "dev@example.com is now admin"))
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, dev)))
    row.find_element(By.CSS_SELECTOR, "button[data-act=user-reset]").click()
    reset = d.find_element(By.ID, "reset-form")
    reset.find_element(By.NAME, "password").send_keys("reset-password")
    reset.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "password set for dev@example.com"))
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, dev)))
    row.find_element(By.CSS_SELECTOR, "button[data-act=user-remove]").click()
    wait.until(ec.alert_is_present()).accept()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "removed dev@example.com"))
    assert "dev@example.com" not in text_of(d, "#users")

    step("an admin sets a user's limits, and the users page shows usage against them")
    mine = f"#users tr[data-email='{EMAIL}']"
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{mine} button[data-act=user-quota]"))).click()
    form = wait.until(ec.visibility_of_element_located((By.ID, "quota-form")))
    form.find_element(By.NAME, "running").send_keys("3")
    form.find_element(By.NAME, "storageMb").send_keys("unlimited")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), f"limits set for {EMAIL}"))
    running = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, f"{mine} .usage[data-quota=running]")))
    assert "of 3" in running.get_attribute("title"), running.get_attribute("title")
    assert running.find_elements(By.CSS_SELECTOR, "svg.bar.quota"), "a usage bar"
    shot(d, "users-quota")

    step("the audit log shows who did what")
    d.find_element(By.ID, "nav-audit").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#audit tbody tr[data-audit]")))
    log = text_of(d, "#audit")
    for action in ("setUserQuota", "deleteUser", "createUser", "updateUser", "cleanup"):
        assert action in log, f"{action} not in the audit log: {log[:2000]}"
    form = d.find_element(By.ID, "audit-filter")
    form.find_element(By.NAME, "action").send_keys("login")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # Read in one script: the table is redrawn when the filter's answer
    # comes, so rows found in one call may be stale in the next.
    rows = lambda d: d.execute_script(
        "return [...document.querySelectorAll('#audit tbody tr[data-audit]')].map(r => r.innerText);")
    wait.until(lambda d: rows(d) and all("login" in r for r in rows(d)))
    # The wrong password at the start: refused, and named.
    assert "refused" in text_of(d, "#audit") and "401" in text_of(d, "#audit")
    shot(d, "audit")

    step("your account: your quota, then make an API token, see it once, revoke it")
    d.find_element(By.ID, "who").click()
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#quota tr[data-quota=running]")))
    assert "of 3" in row.text and "set for you" in row.text, row.text
    assert "unlimited" in text_of(d, "#quota tr[data-quota=storage]")
    form = wait.until(ec.presence_of_element_located((By.ID, "token-form")))
    form.find_element(By.NAME, "name").send_keys("ui-script")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    token = wait.until(ec.presence_of_element_located((By.ID, "token-value"))).text
    assert token.startswith("berth_"), token
    req = urllib.request.Request(BASE + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert json.load(urllib.request.urlopen(req))["data"]["email"] == EMAIL
    assert "this session" in text_of(d, "#tokens")
    d.find_element(By.CSS_SELECTOR, "#tokens button[data-act=revoke-token]").click()
    wait.until(ec.alert_is_present()).accept()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "token revoked"))
    try:
        urllib.request.urlopen(req)
        raise AssertionError("the revoked token still works")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code

    step("change your password")
    form = d.find_element(By.ID, "password-form")
    form.find_element(By.NAME, "current").send_keys(PASSWORD)
    form.find_element(By.NAME, "new").send_keys(NEW_PASSWORD)
    form.find_element(By.NAME, "again").send_keys(NEW_PASSWORD)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "password changed"))

    step("log out: the session is gone")
    d.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    status = d.execute_async_script(
        "const done = arguments[0]; fetch('/api/auth/me').then(r => done(r.status));"
    )
    assert status == 401, status

    step("a link to the workspace without a session: login, then the workspace")
    d.get(f"{BASE}/api/workspaces/{ws_id}/proxy/")
    wait.until(ec.url_contains("#/login?next="))
    form = wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    form.find_element(By.NAME, "email").send_keys(EMAIL)
    form.find_element(By.NAME, "password").send_keys(NEW_PASSWORD)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The workspace was stopped: the proxy wakes it (a "starting" page that
    # reloads itself first), then serves its page.
    WebDriverWait(d, 90, poll_frequency=1).until(
        lambda d: "berth busybox workspace" in d.page_source
    )
    if APP_DOMAIN:
        # On the app's own origin, after the handoff.
        host = urllib.parse.urlsplit(d.current_url).netloc
        port = urllib.parse.urlsplit(BASE).port
        assert host.endswith(f".{APP_DOMAIN}:{port}") and f"--{ws_id[:8]}." in host, d.current_url
    else:
        assert d.current_url.endswith(f"/api/workspaces/{ws_id}/proxy/"), d.current_url


if __name__ == "__main__":
    main()
