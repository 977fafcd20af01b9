"""The manager's pages in a real browser: headless Chromium (Selenium, browser_support.py) against a
real two-node cluster (tests/ha/cluster_harness.py's nodes with the manager app, a realm and
manager users). BASIC login through a header the DevTools protocol adds, after a first load that
shows the 401 access-help page; the status page's live request counts, the cluster page's members
and session counts, and /manager/html's stop, start and WAR upload. Every page state is saved as
a PNG under test-artifacts/browser/ (PYCAT_SCREENSHOTS_TO_DOCS=1: the README's shots to docs/img/)."""
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ha"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from browser_support import Browser, login, logout, rows_with, shooter, skip_reason, wait  # noqa: E402
from cluster_harness import SYNC, User, build_cluster  # noqa: E402
from node_helpers import HOME, Procs, http_get  # noqa: E402
from test_manager_status import ENGINE, NAMING, PYTHONPATH, REALM  # noqa: E402
from test_manager_text import war_bytes, write_folder  # noqa: E402

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

MANAGER_HTML = os.path.join(HOME, "webapps", "manager", "WEB-INF", "classes", "manager_html.py")

USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <user username="admin" password="a-pw" roles="manager-gui"/>
  <user username="watcher" password="w-pw" roles="manager-status"/>
</tomcat-users>
"""


def add_manager(base, hello):
    """The realm, the users, webapps/manager; with ``hello``, a plain (not distributable) app at
    /hello for the html page to stop and start."""
    path = os.path.join(base, "conf", "server.xml")
    with open(path) as fh:
        xml = fh.read()
    assert '<Service name="Catalina">' in xml and ENGINE in xml
    xml = xml.replace('<Service name="Catalina">', NAMING, 1).replace(ENGINE, ENGINE + REALM, 1)
    with open(path, "w") as fh:
        fh.write(xml)
    with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
        fh.write(USERS)
    shutil.copytree(os.path.join(HOME, "webapps", "manager"), os.path.join(base, "webapps", "manager"))
    if hello:
        write_folder(os.path.join(base, "webapps", "hello"), "folder")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PYTHONPATH     # node_env copies os.environ: this tree's pycat
    c = build_cluster(tmp_path_factory.mktemp("browser"), 2, SYNC, procs=Procs())
    try:
        for i, node in enumerate(c.nodes):
            add_manager(node.base, hello=i == 0)
        c.start()
        yield c
    finally:
        c.cleanup()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def chromium():
    """One Chromium for the module (starting one costs about a second); each test logs in itself."""
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def browser(chromium):
    return chromium.driver


@pytest.fixture
def shots(request):
    """shots(driver, state="", docs_name=None): a screenshot as a test artefact (browser_support)."""
    return shooter(request)


def url(node, path):
    return "http://127.0.0.1:%d%s" % (node.http_port, path)


def status_of(node, path):
    """The HTTP status of GET path (urllib, outside the browser); None while nothing answers."""
    answer = http_get(node.http_port, path, timeout=10)
    return answer and answer[0]


def heading(driver):
    found = driver.find_elements("tag name", "h1")
    return found[0].text if found else ""


def app_row(driver, column, path):
    """The row of a status/cluster page table with header ``column`` for context ``path``."""
    for row in rows_with(driver, column):
        # the status page's Path is the context path; the cluster page's Manager is Tomcat's manager
        # name, "<host>#<path>" for a cluster in the Engine
        name = row.get("Path", row.get("Manager", ""))
        if name == path or name.endswith("#" + path):
            return row
    return None


def number(row, column):
    try:
        return int(row[column])
    except (TypeError, KeyError, ValueError):
        return None


# -- /manager/status ----------------------------------------------------------------------------
def test_status_page_login_and_live_request_count(cluster, chromium, browser, shots):
    a = cluster.nodes[0]
    pid = a.info()["pid"]       # the node process, as the app sees it (one /app request)
    logout(browser)
    challenged = len(chromium.auth.challenges)
    browser.get(url(a, "/manager/status"))
    # no credentials: a Basic challenge, "cancelled" as a user closes the dialog, then the 401
    # answer's body: the access-help page
    wait(browser, lambda d: heading(d) == "401 Unauthorized", "the 401 access-help page")
    assert chromium.auth.challenges[challenged:] == [url(a, "/manager/status")]
    assert "tomcat-users.xml" in browser.page_source
    assert not browser.find_elements("id", "out")
    shots(browser, "unauthorized")

    login(browser, "watcher", "w-pw")
    browser.get(url(a, "/manager/status"))
    assert heading(browser) == "pycat server status"
    wait(browser, lambda d: app_row(d, "Requests", "/app"), "the status page to list /app")
    server = rows_with(browser, "PID")
    assert len(server) == 1 and server[0]["PID"] == str(pid), server
    assert server[0]["Server"] and server[0]["Uptime"].endswith(" s") and int(server[0]["Greenlets"]) > 0
    connectors = [r for r in rows_with(browser, "Port") if r["Port"] == str(a.http_port)]
    assert len(connectors) == 1 and connectors[0]["State"], connectors
    before = number(app_row(browser, "Requests", "/app"), "Requests")
    assert before is not None and before >= 1

    for i in range(5):
        User().get(a, "/set?name=n&value=%d" % i)
    # the page polls its JSON every 2 s: the DOM catches up without a reload
    wait(browser, lambda d: (number(app_row(d, "Requests", "/app"), "Requests") or 0) >= before + 5,
         "the live page to count 5 more /app requests")
    row = app_row(browser, "Requests", "/app")
    assert number(row, "Requests") == before + 5, row
    assert number(row, "Sessions") >= 5 and row["State"] == "STARTED", row
    assert browser.find_element("id", "err").text == ""
    shots(browser, docs_name="manager-status")


# -- /manager/cluster ---------------------------------------------------------------------------
def member_names(driver):
    return [r["Member"] for r in rows_with(driver, "Member")]


def sessions_here(driver):
    return number(app_row(driver, "Sessions here", "/app"), "Sessions here")


def open_cluster_page(driver, node, other, gui):
    """Load ``node``'s cluster page and wait for both members and /app; ``gui``: the user has
    manager-gui, the role the turnover form needs."""
    driver.get(url(node, "/manager/cluster"))
    assert heading(driver) == "pycat cluster status"

    def both_members(d):
        names = member_names(d)
        return (len(names) == 2 and any(":%d" % node.rx_port in n and "(this node)" in n for n in names)
                and any(":%d" % other.rx_port in n and "(this node)" not in n for n in names)
                and sessions_here(d) is not None)
    wait(driver, both_members, "%s's cluster page to show both members and /app" % node.name)
    if driver.find_elements("css selector", "svg#members-picture"):
        # the members picture and the turnover form came with the html manager
        wait(driver, lambda d: len(d.find_elements("css selector", "svg#members-picture g.member")) == 2,
             "two members in the members picture")
        assert bool(driver.find_elements("css selector", "form#turnover")) == gui


def test_cluster_page_members_and_session_counts(cluster, browser, shots):
    a, b = cluster.nodes
    # manager-status reads the page; the turnover form (a state change) is manager-gui's
    login(browser, "watcher", "w-pw")
    open_cluster_page(browser, b, a, gui=False)
    b_before = sessions_here(browser)
    login(browser, "admin", "a-pw")
    open_cluster_page(browser, a, b, gui=True)
    a_before = sessions_here(browser)

    users = [User() for _ in range(3)]
    for user in users:
        user.get(a, "/set?name=k&value=v")
    wait(browser, lambda d: sessions_here(d) == a_before + 3, "node1's page to count 3 new sessions")
    shots(browser, docs_name="manager-cluster")
    # SYNC replication: node2 holds the copies, and its page says so
    open_cluster_page(browser, b, a, gui=True)
    wait(browser, lambda d: sessions_here(d) == b_before + 3, "node2's page to count the 3 replicated sessions")
    users[0].get(a, "/invalidate")
    wait(browser, lambda d: sessions_here(d) == b_before + 2, "node2's page to drop the invalidated session")
    shots(browser, "node2")


# -- /manager/html ------------------------------------------------------------------------------
def apps(driver):
    """{context path: state} from table#apps."""
    found = {}
    for tr in driver.find_elements("css selector", "table#apps tr.app"):
        found[tr.get_attribute("data-path")] = tr.find_element("css selector", "td.state").text.strip()
    return found


def message(driver):
    found = driver.find_elements("id", "message")
    return found[0].text.strip() if found else None


def act(driver, path, action):
    """Click the ``action`` button of ``path``'s row; wait for the next page's message."""
    from selenium.webdriver.support import expected_conditions as EC
    button = driver.find_element("css selector", 'table#apps tr.app[data-path="%s"] form.action-%s button[type="submit"]'
                                 % (path, action))
    button.click()
    wait(driver, EC.staleness_of(button), "the page after %s %s" % (action, path))
    wait(driver, lambda d: message(d), "the message after %s %s" % (action, path))
    return message(driver)


def test_html_page_stop_start_and_upload(cluster, browser, shots, tmp_path):
    if not os.path.exists(MANAGER_HTML):
        pytest.skip("manager_html not present yet")
    a = cluster.nodes[0]
    logout(browser)
    browser.get(url(a, "/manager/html"))
    wait(browser, lambda d: heading(d) == "401 Unauthorized", "the 401 access-help page")
    # manager-status reads the status pages, not the html manager (positive control just below)
    login(browser, "watcher", "w-pw")
    browser.get(url(a, "/manager/html"))
    wait(browser, lambda d: heading(d) == "403 Access Denied", "the 403 access-help page")
    assert not browser.find_elements("id", "apps")

    login(browser, "admin", "a-pw")
    browser.get(url(a, "/manager/html"))
    wait(browser, lambda d: d.find_elements("css selector", "table#apps tr.app"), "the app list")
    listed = apps(browser)
    assert {"/", "/app", "/hello", "/manager"} <= set(listed), listed
    assert listed["/hello"] == "running" and set(listed.values()) <= {"running", "stopped"}, listed
    sessions = browser.find_element("css selector", 'tr.app[data-path="/app"] td.sessions').text.strip()
    assert sessions.isdigit(), sessions
    assert browser.find_elements("css selector", "table#serverinfo")
    assert not (message(browser) or "").startswith("OK - ")     # Tomcat's list says just "OK"
    shots(browser, "list")
    assert status_of(a, "/hello/hello") == 200

    text = act(browser, "/hello", "stop")
    assert text.startswith("OK - "), text
    assert apps(browser)["/hello"] == "stopped"
    assert status_of(a, "/hello/hello") != 200
    assert status_of(a, "/app/ids") == 200        # only /hello stopped
    shots(browser, "stopped")

    text = act(browser, "/hello", "start")
    assert text.startswith("OK - "), text
    assert apps(browser)["/hello"] == "running"
    assert status_of(a, "/hello/hello") == 200
    shots(browser, "started")

    war = tmp_path / "upl.war"
    war.write_bytes(war_bytes("upload"))
    assert "/upl" not in apps(browser) and status_of(a, "/upl/hello") != 200
    browser.find_element("css selector", 'form#upload input[type="file"][name="deployWar"]').send_keys(str(war))
    button = browser.find_element("id", "upload-submit")
    button.click()
    from selenium.webdriver.support import expected_conditions as EC
    wait(browser, EC.staleness_of(button), "the page after the upload")
    wait(browser, lambda d: message(d), "the message after the upload")
    assert message(browser).startswith("OK - "), message(browser)
    assert apps(browser).get("/upl") == "running", apps(browser)
    answer = http_get(a.http_port, "/upl/hello", timeout=10)      # the uploaded code answers
    assert answer is not None and answer[0] == 200 and answer[1] == b"hello upload\n", answer
    shots(browser, "uploaded", docs_name="manager-html")
