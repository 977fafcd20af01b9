"""Small stand-in classes for digester tests (referenced as tests.startup.dummies:Name)."""
from pycat.attrs import Attr


class Node:
    def __init__(self):
        self.children = []
        self.calls = []
        self.listeners = []

    def add_lifecycle_listener(self, listener):
        self.listeners.append(listener)

    def _record(self, method, *args):
        self.calls.append((method,) + args)

    def __getattr__(self, name):
        # every add_x / set_x a rule may call is recorded in order
        if name.startswith(("add_", "set_")) and name != "set_property":
            return lambda *args: self._record(name, *args)
        raise AttributeError(name)


class Server(Node):
    port = Attr(int, 8005)
    shutdown = Attr(str, "SHUTDOWN")
    address = Attr(str, "localhost")

    def await_shutdown(self):
        pass

    def request_shutdown(self):
        pass


class Service(Node):
    name = Attr(str, "Catalina")


class Connector(Node):
    port = Attr(int, 8080)
    connection_timeout = Attr(int, 20000)
    secure = Attr(bool, False)


class Engine(Node):
    name = Attr(str, "Catalina")
    default_host = Attr(str, "localhost")
    jvm_route = Attr(str, None)


class Host(Node):
    name = Attr(str, "localhost")
    app_base = Attr(str, "webapps")


class Context(Node):
    path = Attr(str, "")


class Valve(Node):
    pattern = Attr(str, "common")
    directory = Attr(str, "logs")


class Generic(Node):
    """Takes any attribute, like Tomcat's setProperty fallback."""

    def __init__(self):
        super().__init__()
        self.props = {}

    def set_property(self, name, value):
        self.props[name] = value
        return True


class Listener:
    def __init__(self):
        self.events = []

    def lifecycle_event(self, event):
        self.events.append(event.type)


class Broken:
    def __init__(self):
        raise RuntimeError("constructor exploded")


class SnapshotService(Service):
    """Records what a connector looked like at the moment it was attached."""

    def __init__(self):
        super().__init__()
        self.snapshots = []

    def add_connector(self, connector):
        self.snapshots.append((connector.port, [c[0] for c in connector.calls]))
