"""ContainerBase: what Engine, Host, Context and Wrapper share (Tomcat's ContainerBase).

A container has a name, a parent, named children, a pipeline ending in its basic valve, and
optionally a realm and a cluster which it starts and stops with itself. Children added to a
started container are started at once; removing a child stops it. ``background_process()``
runs the periodic work of this container (cluster, realm, valves, the ``periodic`` lifecycle
event that deployers listen to) and then recurses into the children.
"""
import logging
import os

from pycat.attrs import Attr
from pycat.lifecycle import Lifecycle, LifecycleState, PERIODIC_EVENT
from pycat.core.pipeline import Pipeline

log = logging.getLogger(__name__)


class ContainerBase(Lifecycle):
    #: a child that fails to start is logged and left FAILED instead of failing this container
    tolerate_child_failures = False
    #: requests inside this container now (the Host valve counts them for its Contexts, so that a
    #: retired Context is stopped only once they are done); a class default, set per instance on use
    inflight_requests = 0
    #: an Event while Host.drain() waits for inflight_requests to reach 0 (the valve sets it then),
    #: else None; drain_waiters counts the drains sharing it
    drained = None
    drain_waiters = 0
    #: the Context's request figures for the status page (a RequestStats the connector's Adapter
    #: makes on the Context's first request and updates on each one); None before
    request_stats = None

    name = Attr(str, None, "Name of this container")
    background_processor_delay = Attr(int, -1, "Seconds between background_process() calls "
                                      "(only the Engine runs a ticker; -1 inherits)")

    def __init__(self):
        super().__init__()
        self.parent = None
        self.children = {}
        self.pipeline = Pipeline(self)
        self.realm = None
        self.cluster = None

    # -- tree -------------------------------------------------------------------------
    def add_child(self, child):
        key = child.name
        if key in self.children:
            raise ValueError("%s already has a child named %r" % (self.component_name, key))
        child.parent = self
        self.children[key] = child
        self._children_changed()
        if self.state in (LifecycleState.STARTING, LifecycleState.STARTED):
            child.start()

    def remove_child(self, child):
        if self.children.get(child.name) is not child:
            return
        try:
            child.stop()
        finally:
            del self.children[child.name]
            self._children_changed()
            child.parent = None

    def find_child(self, name):
        return self.children.get(name)

    def find_children(self):
        return list(self.children.values())

    def _children_changed(self):
        """The mapper's view of the tree is stale; the Engine rebuilds it on the next request."""
        engine = self.get_engine()
        if engine is not None:
            engine.invalidate_mapper()

    def get_engine(self):
        node = self
        while node is not None and not getattr(node, "is_engine", False):
            node = node.parent
        return node

    def get_server(self):
        engine = self.get_engine()
        service = getattr(engine, "service", None) if engine is not None else None
        return getattr(service, "server", None)

    @property
    def catalina_base(self):
        server = self.get_server()
        base = getattr(server, "catalina_base", None) if server is not None else None
        return base or os.environ.get("CATALINA_BASE") or os.getcwd()

    @property
    def catalina_home(self):
        server = self.get_server()
        home = getattr(server, "catalina_home", None) if server is not None else None
        return home or os.environ.get("CATALINA_HOME") or self.catalina_base

    # -- nested elements from server.xml -------------------------------------------------
    def add_valve(self, valve):
        self.pipeline.add_valve(valve)

    def set_realm(self, realm):
        self.realm = realm
        if realm is not None and hasattr(realm, "container"):
            realm.container = self

    def get_realm(self):
        """This container's realm, else the nearest parent's (Tomcat's inheritance)."""
        node = self
        while node is not None:
            if node.realm is not None:
                return node.realm
            node = node.parent
        return None

    def set_cluster(self, cluster):
        """Keep the cluster and start/stop it with this container (cluster classes come later)."""
        self.cluster = cluster
        if cluster is None:
            return
        setter = getattr(cluster, "set_container", None)
        if callable(setter):
            setter(self)
        else:
            try:
                cluster.container = self
            except AttributeError:
                pass

    def get_cluster(self):
        node = self
        while node is not None:
            if node.cluster is not None:
                return node.cluster
            node = node.parent
        return None

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self):
        for part in (self.cluster, self.realm):
            if part is not None and hasattr(part, "start"):
                part.start()
        for child in list(self.children.values()):
            if self.tolerate_child_failures:
                try:
                    child.start()
                except Exception:
                    # as Tomcat's StandardContext: a broken web app is FAILED and logged, the Host serves on
                    log.exception("%s: %s failed to start", self.component_name, child.component_name)
            else:
                child.start()
        self.pipeline.start()

    def _stop(self):
        self.pipeline.stop()
        for child in reversed(list(self.children.values())):
            try:
                child.stop()
            except Exception:
                log.exception("%s: stopping %s failed", self.component_name, child.component_name)
        for part in (self.realm, self.cluster):
            if part is not None and hasattr(part, "stop"):
                try:
                    part.stop()
                except Exception:
                    log.exception("%s: stopping %r failed", self.component_name, part)

    def _destroy(self):
        for child in list(self.children.values()):
            child.destroy()

    # -- periodic work -------------------------------------------------------------------
    def background_process(self):
        if self.state is not LifecycleState.STARTED:
            return
        for part in (self.cluster, self.realm):
            step = getattr(part, "background_process", None)
            if step is not None:
                try:
                    step()
                except Exception:
                    log.exception("%s: background process of %r failed", self.component_name, part)
        self.pipeline.background_process()
        self.fire_lifecycle_event(PERIODIC_EVENT)
        for child in list(self.children.values()):
            try:
                child.background_process()
            except Exception:
                log.exception("%s: background process of %s failed",
                              self.component_name, child.component_name)
