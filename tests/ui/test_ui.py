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
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["BERTH_URL"]
EMAIL = os.environ["BERTH_EMAIL"]
PASSWORD = os.environ["BERTH_PASSWORD"]
NEW_PASSWORD = PASSWORD + "-changed"


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
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
            )

        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and not expected(e)]
        d.quit()
    assert not errors, f"errors in the browser console: {errors}"
    step("all steps passed")


def text_of(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def run(d, wait):
    step("the page asks for a login")
    d.get(BASE + "/")
    wait.until(ec.url_contains("#/login"))
    form = wait.until(ec.presence_of_element_located((By.ID, "login-form")))

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
    d.find_element(By.CSS_SELECTOR, "#backups button[data-act=verify]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flash"), "checksum matches"))

    step("stop it from the list")
    d.get(BASE + "/#/")
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{ws_id}']")))
    row.find_element(By.CSS_SELECTOR, "button[data-act=stop]").click()
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

    step("your account: make an API token, see it once, revoke it")
    d.find_element(By.ID, "who").click()
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
    assert d.current_url.endswith(f"/api/workspaces/{ws_id}/proxy/"), d.current_url


if __name__ == "__main__":
    main()
