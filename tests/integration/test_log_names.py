"""Log lines of a real node say which greenlet or component wrote them (Tomcat's [thread] field),
not gevent's anonymous "[Dummy-N]"; and the GlobalNamingResources line says what pycat does with
them. A real ``pycat run`` with the stock conf/logging.ini format."""
import os
import re
import zipfile

import pytest

from node_helpers import wait_until

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <GlobalNamingResources>
    <Resource name="UserDatabase" auth="Container" type="org.apache.catalina.UserDatabase"
              factory="org.apache.catalina.users.MemoryUserDatabaseFactory" pathname="conf/tomcat-users.xml"/>
    <Environment name="answer" value="42" type="java.lang.Integer"/>
  </GlobalNamingResources>
  <Service name="Catalina">
    <Connector port="${http.port}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="0.2">
      <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true"/>
    </Engine>
  </Service>
</Server>
"""

APP = {
    "WEB-INF/web.xml": """<web-app>
  <servlet><servlet-name>log</servlet-name><servlet-class>logs:Log</servlet-class></servlet>
  <servlet-mapping><servlet-name>log</servlet-name><url-pattern>/log</url-pattern></servlet-mapping>
</web-app>""",
    "WEB-INF/classes/logs.py": """import logging

from pycat.webapp.servlet import HttpServlet


class Log(HttpServlet):
    def do_get(self, request, response):
        logging.getLogger("logapp").warning("a line logged by the app for %s", request.context_path)
        response.write("logged")
""",
}


def write_app(folder, files):
    for rel, content in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(content)
    return folder


def line_with(log, text):
    found = [line for line in log.splitlines() if text in line]
    assert found, "no log line with %r in:\n%s" % (text, log)
    return found[0]


def thread_field(line):
    """The [..] field of conf/logging.ini's format: date time LEVEL [thread] logger message."""
    match = re.match(r"\S+ \S+ [A-Z]+ \[(.*?)\] pycat|\S+ \S+ [A-Z]+ \[(.*?)\] logapp", line)
    assert match, line
    return match.group(1) or match.group(2)


@pytest.mark.timeout(120)
def test_log_lines_name_their_greenlet_or_component(tmp_path, pycat_node):
    node = pycat_node(server_xml=SERVER_XML, apps=[write_app(str(tmp_path / "first"), APP)])
    base, port = node.base, node.http_port
    assert node.get("/first/log").status == 200
    # a request of an app, a deploy on the background tick, a deploy through the deploy channel
    write_app(os.path.join(node.app_base, "ticked"), APP)
    wait_until(lambda: node.get("/ticked/log").status == 200, message="/ticked deployed on a tick")
    war = str(tmp_path / "viacli.war")
    with zipfile.ZipFile(war, "w") as zf:
        for rel, content in APP.items():
            zf.writestr(rel, content)
    deployed = node.cli("deploy", war)
    assert deployed.returncode == 0, deployed.stderr
    assert node.get("/viacli/log").status == 200
    assert node.stop() == 0    # SIGTERM: its handler logs too
    log = node.log()

    assert "[Dummy-" not in log, log
    assert thread_field(line_with(log, "Server startup in")) == "main"
    assert thread_field(line_with(log, "deploying web application directory %s" % os.path.join(
        base, "webapps", "first"))) == "main"
    served = thread_field(line_with(log, "a line logged by the app for /first"))
    assert re.fullmatch(r"http-%d-exec-\d+" % port, served), served
    assert thread_field(line_with(log, "webapps/ticked as /ticked")) == "Engine[Catalina].background_loop"
    assert thread_field(line_with(log, "webapps/viacli.war as /viacli")) == "ManagerEndpoint[deploy-channel].serve"

    assert thread_field(line_with(log, "Signal SIGTERM received")) == "signal-handler"
    assert thread_field(line_with(log, "Server stopped")) == "main"

    naming = line_with(log, "GlobalNamingResources")
    assert "later version" not in log
    assert "1 Resource(s) ['UserDatabase'], 1 Environment(s)" in naming and "UserDatabaseRealm" in naming, naming
