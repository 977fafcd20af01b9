"""Headless Chromium for the manager's browser tests (test_manager_browser.py), driven by Selenium
through the Debian `chromium` and `chromium-driver` packages (installed by .ci/run).

Offline by construction: the chromedriver and Chromium paths are given explicitly, so Selenium
Manager never looks for (or downloads) a driver, and SE_OFFLINE=true stops it anyway should a
future Selenium consult it; Chromium's own background traffic (component updates, sync, QUIC,
background requests) is switched off by flags. --no-sandbox because CI runs the tests as root,
where Chromium refuses to start sandboxed.

BASIC login: headless Chromium cannot show the credentials dialog, and it does not give up on
its own either: a 401 with a Basic challenge leaves the page blank, waiting for an answer. So the
browser gets a second DevTools client (``CancelAuthDialogs``, on the page's own websocket) that
answers each challenge as a user closing the dialog does (Fetch.continueWithAuth CancelAuth):
Chromium then shows the 401 answer's body, the manager's access-help page. ``login`` sends the
Authorization header with every request through the DevTools protocol
(Network.setExtraHTTPHeaders), the polling pages' XMLHttpRequests included; ``logout`` clears it.
Selenium's own BiDi authentication handlers would do the same, but their Python API is still
changing from release to release; the two DevTools commands used here have been stable for years.

Screenshots are test artefacts: ``<repo>/test-artifacts/browser/<test name>[-<state>].png``, each
path recorded on the test (``record_property("screenshot", ...)``, in JUnit XML), added to the
test's report sections (shown with a failure) and listed at the end of the terminal summary. With
PYCAT_SCREENSHOTS_TO_DOCS=1 the shots marked for the README are copied to docs/img/ as well.
"""
import base64
import importlib.util
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ARTIFACTS = os.path.join(REPO, "test-artifacts", "browser")
DOCS_IMG = os.path.join(REPO, "docs", "img")

CHROMIUM = os.environ.get("PYCAT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PYCAT_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1200, 800)     # small PNGs for the README; the pages are laid out for this width
WAIT = 30.0              # generous: two cores shared with other tests and two nodes

log = logging.getLogger(__name__)

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
         "--no-default-browser-check", "--password-store=basic", "--hide-scrollbars",
         "--window-size=%d,%d" % WINDOW)


def skip_reason():
    """Why the browser tests cannot run here (None when they can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return "%s not found (Debian package %s; .ci/run installs it)" % (path, package)
    # websocket is websocket-client, a dependency of selenium
    for module in ("selenium", "websocket"):
        if importlib.util.find_spec(module) is None:
            return "Python module %s is not installed (pip install -e '.[test]')" % module
    return None


class CancelAuthDialogs(threading.Thread):
    """A DevTools client on one page target that lets every request through (Fetch.requestPaused
    -> continueRequest) and cancels every authentication challenge (Fetch.authRequired ->
    CancelAuth), so a 401 shows its body. ``challenges`` lists the URLs it cancelled."""

    def __init__(self, debugger_address, target_id):
        super().__init__(name="cdp-cancel-auth", daemon=True)
        import websocket
        # the browser's own DevTools listener on this machine: never through an http_proxy
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open("http://%s/json/list" % debugger_address, timeout=10) as resp:
            targets = json.load(resp)
        url = [t["webSocketDebuggerUrl"] for t in targets if t["id"] == target_id]
        assert url, (target_id, targets)
        # no Origin header: Chromium refuses DevTools websockets from an origin it was not told of
        self.ws = websocket.create_connection(url[0], timeout=10, suppress_origin=True)
        self.ws.settimeout(None)
        self.ids = itertools.count(1)
        self.challenges = []
        # both waiting for Fetch.enable's answer and the loop read the socket: enable first
        enable = self._send("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*"}]})
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == enable:
                assert "error" not in msg, msg
                break
            self._handle(msg)

    def _send(self, method, params):
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        return ident

    def _handle(self, msg):
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Fetch.requestPaused":
            self._send("Fetch.continueRequest", {"requestId": params["requestId"]})
        elif method == "Fetch.authRequired":
            self.challenges.append(params["request"]["url"])
            self._send("Fetch.continueWithAuth", {"requestId": params["requestId"],
                                                  "authChallengeResponse": {"response": "CancelAuth"}})
        elif "error" in msg:
            # e.g. a paused request the page dropped meanwhile (a navigation): nothing waits on it
            log.debug("DevTools answer: %s", msg)

    def run(self):
        import websocket
        while True:
            try:
                self._handle(json.loads(self.ws.recv()))
            except (websocket.WebSocketException, OSError, ValueError):
                return          # the browser went away, or close()

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing a socket the browser already dropped
            pass


class Browser:
    """A fresh headless Chromium with its own temporary profile: ``driver`` (Selenium),
    ``auth`` (the CancelAuthDialogs on its tab)."""

    def __init__(self):
        os.environ["SE_OFFLINE"] = "true"      # Selenium Manager: never reach the network
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="pycat-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument("--user-data-dir=" + self.profile)
        service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(self.profile, "chromedriver.log"))
        self.driver = self.auth = None
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
            self.driver.set_page_load_timeout(WAIT)
            self.driver.execute_cdp_cmd("Network.enable", {})
            # the page area itself WINDOW big (--window-size counts the window's frame too)
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
            address = self.driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
            # chromedriver's window handles are the DevTools target ids
            self.auth = CancelAuthDialogs(address, self.driver.current_window_handle)
            self.auth.start()
        except BaseException:
            self.close()
            raise

    def close(self):
        try:
            if self.auth is not None:
                self.auth.close()
            if self.driver is not None:
                self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def login(driver, user, password):
    """Every following request of this browser carries ``Authorization: Basic ...``."""
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + token}})


def logout(driver):
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def wait(driver, condition, message, timeout=WAIT):
    """WebDriverWait on ``condition(driver)`` (truthy ends it; a vanished element counts as not
    yet); the TimeoutException carries ``message`` and the page's text."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        try:
            text = driver.find_element("tag name", "body").text
        except Exception:  # noqa: BLE001 - the page itself may be what broke
            text = "(no body)"
        raise AssertionError("timed out after %.0f s waiting for %s; %s shows:\n%s"
                             % (timeout, message, driver.current_url, text[:3000])) from None


# Every <table> of the page as a list of rows, each {header text: cell text}: the status and
# cluster pages build their tables from JSON without ids, so the tests find them by column names.
TABLES_JS = """
return Array.from(document.querySelectorAll(arguments[0] || "table")).map(function(t){
  var heads = Array.from(t.querySelectorAll("tr th")).map(function(th){return th.textContent.trim();});
  return Array.from(t.querySelectorAll("tr")).filter(function(tr){return tr.querySelector("td");})
    .map(function(tr){var row = {};
      Array.from(tr.querySelectorAll("td")).forEach(function(td, i){row[heads[i] || i] = td.textContent.trim();});
      return row;});
});
"""


def tables(driver, selector=None):
    return driver.execute_script(TABLES_JS, selector)


def rows_with(driver, column):
    """The rows of every table that has a ``column`` header."""
    return [row for table in tables(driver) for row in table if column in row]


class Screenshots:
    """Saves PNGs as test artefacts and lists them at the end of the terminal report."""

    name = "pycat-browser-screenshots"

    def __init__(self):
        self.saved = []

    @classmethod
    def get(cls, config):
        plugin = config.pluginmanager.get_plugin(cls.name)
        if plugin is None:
            plugin = cls()
            config.pluginmanager.register(plugin, cls.name)
        return plugin

    def take(self, driver, request, state="", docs_name=None):
        """``test-artifacts/browser/<test>[-<state>].png``; with PYCAT_SCREENSHOTS_TO_DOCS=1 and
        a ``docs_name``, copied to docs/img/<docs_name>.png too. Returns the path."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        stem = request.node.name + ("-" + state if state else "")
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        path = os.path.join(ARTIFACTS, stem + ".png")
        # scrolled to the top: the README shots show the page's heading
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(path), path
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", path
        rel = os.path.relpath(path, REPO)
        request.node.user_properties.append(("screenshot", rel))
        request.node.add_report_section("call", "screenshot", rel)
        self.saved.append(rel)
        if docs_name and os.environ.get("PYCAT_SCREENSHOTS_TO_DOCS") == "1":
            os.makedirs(DOCS_IMG, exist_ok=True)
            shutil.copyfile(path, os.path.join(DOCS_IMG, docs_name + ".png"))
        return path

    def pytest_terminal_summary(self, terminalreporter):
        if self.saved:
            terminalreporter.section("browser screenshots (test artefacts)")
            for rel in self.saved:
                terminalreporter.write_line(rel)


def shooter(request):
    """``shoot(driver, state="", docs_name=None)`` for the test of ``request`` (Screenshots.take)."""
    plugin = Screenshots.get(request.config)

    def shoot(driver, state="", docs_name=None):
        return plugin.take(driver, request, state, docs_name)
    return shoot
