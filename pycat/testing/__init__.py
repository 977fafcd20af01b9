"""pycat.testing: real pycat nodes and clusters for tests, and simulated users.

The pytest plugin (``pycat.testing.plugin``, registered as a ``pytest11`` entry point) wraps these
in fixtures: ``pycat_node``, ``pycat_cluster``, ``pycat_user``. The classes work without pytest:

* ``Node`` (node.py): one ``pycat run`` subprocess on a fresh CATALINA_BASE with free ports;
* ``Cluster`` (cluster.py): N nodes in one cluster of their own;
* ``Client`` (client.py): one user's cookies, sent to whichever node a test names;
* ``free_port`` / ``mcast_group`` (ports.py): ports and groups unique across processes.

Nothing here imports pytest, and importing it starts nothing.
"""
from pycat.testing.client import Client, Response
from pycat.testing.cluster import ASYNC, SYNC, Cluster
from pycat.testing.node import App, Node, NodeError, build_war, live_nodes, reap
from pycat.testing.ports import free_port, mcast_group, release_port

__all__ = ["ASYNC", "SYNC", "App", "Client", "Cluster", "Node", "NodeError", "Response", "build_war",
           "free_port", "live_nodes", "mcast_group", "reap", "release_port"]
