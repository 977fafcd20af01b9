"""Harness for the farm deployment tests: N real `pycat run` nodes on 127.0.0.1 whose <Cluster> has a
FarmWarDeployer, and small WARs made on the fly.

    def test_something(farm_factory):
        farm = farm_factory(3)                      # node1 watches its watchDir; not started
        farm.start()                                # one after the other, full membership
        drop(farm[0], make_war(tmp_path, "app", "v1"))
        farm.wait_serving("/app/", b"v1")

It is cluster_harness's Cluster and Node (pycat.testing's, plus the harness's process, log and
HTTP helpers). Each node's server.xml has the Engine's ``backgroundProcessorDelay="1"``, the
cluster (in the Host by default, ``in_engine=True`` for the Engine) on a multicast group of its
own, and ``<Deployer tempDir="war-temp" watchDir="war-listen" watchEnabled=... processDeployFrequency="1"
maxValidTime=...>`` (watchEnabled only on node1 unless ``watchers`` says otherwise: the property
``farm.watch`` of each node).

``make_war(folder, name, text)`` builds ``name.war`` whose servlet answers ``text`` at ``/`` (and
``/x``); ``broken="zip"`` writes bytes that are no zip, ``broken="import"`` a WAR whose servlet module
raises ImportError when loaded.
"""
import os
import zipfile

import pytest

from cluster_harness import Cluster, write_root, wait_until
from node_helpers import SERVER_XML

# the farm's nodes: pycat.testing's <Cluster> with no Manager and no valves, and this Deployer
FARM_DEPLOYER_XML = """<Deployer className="org.apache.catalina.ha.deploy.FarmWarDeployer" tempDir="war-temp"
            deployDir="webapps" watchDir="war-listen" watchEnabled="${{farm.watch}}" processDeployFrequency="1"
            {extra}/>"""
AUTH = '<Interceptor className="pycat.AuthInterceptor" secret="farm-test-secret"/>'

_HOST_OPEN = '<Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true">'

APP = '''
def application(environ, start_response):
    body = {text!r}
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''
WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet><servlet-name>farm</servlet-name><servlet-class>farm_app:application</servlet-class></servlet>
  <servlet-mapping><servlet-name>farm</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""


def make_war(folder, name, text, broken=None, padding=0):
    """``folder/name.war``: a servlet answering ``text`` (bytes) on every path; ``padding`` bytes of
    incompressible data in WEB-INF/pad.bin (a large WAR that still deploys fast)."""
    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), name + ".war")
    if broken == "zip":
        with open(path, "wb") as fh:
            fh.write(b"this is not a zip archive " * 40)
        return path
    body = text if isinstance(text, bytes) else text.encode()
    code = "raise ImportError('farm test: this version is broken')\n" if broken == "import" else APP.format(text=body)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("WEB-INF/web.xml", WEB_XML)
        zf.writestr("WEB-INF/classes/farm_app.py", code)
        if padding:
            zf.writestr(zipfile.ZipInfo("WEB-INF/pad.bin"), os.urandom(padding), zipfile.ZIP_STORED)
    return path


def drop(node, war_path, name=None):
    """Copy a WAR into ``node``'s watchDir the way a user would: a temp name, then a rename."""
    target = os.path.join(node.base, "war-listen", name or os.path.basename(war_path))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".part"          # not *.war: the watcher ignores it until the rename
    with open(war_path, "rb") as src, open(tmp, "wb") as out:
        out.write(src.read())
    os.replace(tmp, target)
    return target


class Farm(Cluster):
    def serving(self, node, path, body):
        resp = node.try_request(path, timeout=5.0)
        return resp is not None and resp.status == 200 and resp.body == body

    def wait_serving(self, path, body, nodes=None, timeout=40.0):
        for node in (self.nodes if nodes is None else nodes):
            wait_until(lambda: self.serving(node, path, body), timeout=timeout, interval=0.05,
                       message="%s to serve %r at %s" % (node.name, body, path))

    def wait_gone(self, path, nodes=None, timeout=40.0):
        for node in (self.nodes if nodes is None else nodes):
            def gone():
                resp = node.try_request(path, timeout=5.0)
                return resp is not None and resp.status == 404
            wait_until(gone, timeout=timeout, interval=0.05, message="%s to stop serving %s" % (node.name, path))


def build_farm(root, n=3, procs=None, in_engine=False, watchers=(1,), max_valid_time=300, auth=False, extra=""):
    xml = SERVER_XML.format(shutdown_port="${shutdown.port}")
    engine_open = 'jvmRoute="${jvm.route:-node0}">'
    assert engine_open in xml and _HOST_OPEN in xml
    xml = xml.replace(engine_open, engine_open[:-1] + ' backgroundProcessorDelay="1">', 1)
    farm = Farm(root, n, None, server_xml=xml, valves="", in_host=not in_engine, interceptors=AUTH if auth else "",
                extra=FARM_DEPLOYER_XML.format(extra='maxValidTime="%d"%s' % (max_valid_time, extra)),
                node_properties={"node%d" % i: {"farm.watch": "true" if i in watchers else "false"}
                                 for i in range(1, n + 1)})
    for node in farm.nodes:
        write_root(node)
        if procs is not None:
            procs.add(node)
    return farm


def temp_files(node):
    """What is left in the node's tempDir."""
    folder = os.path.join(node.base, "war-temp")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture
def farm_factory(tmp_path):
    made = []

    def make(n=3, **options):
        farm = build_farm(tmp_path / ("farm%d" % len(made)), n, **options)
        made.append(farm)
        return farm
    yield make
    for farm in made:
        farm.close()
