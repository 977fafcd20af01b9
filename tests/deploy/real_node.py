"""The deploy tests' real node: the plugin's Node (a ``pycat run`` subprocess on a fresh base) with
a 0.2 s background tick (a dropped file is looked at within a second), Host attributes of the
test's choice, and webapps/ROOT serving "hello from pycat"."""
import os

import pytest

from pycat.testing import Node

HELLO = "hello from pycat\n"
SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${{http.port}}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="0.2">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true" {host_attrs}/>
    </Engine>
  </Service>
</Server>
"""


class RealNode(Node):
    def __init__(self, base, server_xml=None, apps=(), host_attrs="", **options):
        super().__init__(base, server_xml or SERVER_XML.format(host_attrs=host_attrs), apps, **options)
        os.makedirs(os.path.join(self.app_base, "ROOT"), exist_ok=True)
        with open(os.path.join(self.app_base, "ROOT", "index.html"), "w") as fh:
            fh.write(HELLO)
        self.webapps = self.app_base
        self.work = os.path.join(self.work_dir, "Catalina", "localhost")

    def status(self, path):
        return self.get(path).status

    def body(self, path):
        """(status, body text)."""
        resp = self.get(path)
        return resp.status, resp.text


@pytest.fixture
def real_node(pycat_node):
    """``real_node(host_attrs="")`` -> a RealNode, not started yet (``.start()`` returns it)."""
    return lambda host_attrs="": pycat_node(node_class=RealNode, host_attrs=host_attrs, start=False)
