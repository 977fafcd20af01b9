"""Node 1 of test_persistent_failover, as a process of its own (the test kills it with SIGKILL).

Usage: python failover_node.py '<json>' with keys kind ("file", "sqlite", "postgres"), directory
or url and table, work (its work folder), now (its clock). It serves two requests on one session
through a PersistentManager with maxIdleBackup=0 (each completed request is written to the shared
store), starts a third one that it never finishes, prints one JSON line and waits to be killed.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pycat.session.persistent import PersistentManager  # noqa: E402
from pycat.session.store_file import FileStore  # noqa: E402
from pycat.session.store_jdbc import JDBCStore  # noqa: E402


def main():
    config = json.loads(sys.argv[1])
    if config["kind"] == "file":
        store = FileStore()
        store.directory = config["directory"]
    else:
        store = JDBCStore()
        store.connection_url = config["url"]
        store.session_table = config["table"]
    manager = PersistentManager()
    manager.clock = lambda: config["now"]
    manager.work_dir = config["work"]
    manager.name = "/Catalina/localhost/app"
    manager.jvm_route = "n1"
    manager.max_idle_backup = 0
    manager.set_store(store)
    manager.start()

    session = manager.create_session()
    session.access()
    session.update(user="ana", cart=["apple"])
    session.end_access()
    again = manager.find_session(session.id)
    again.access()
    again["cart"] = again["cart"] + ["pear"]
    again.end_access()
    # a request in progress when the node dies: its change is in this process's memory only
    third = manager.find_session(session.id)
    third.access()
    third["cart"] = third["cart"] + ["plum"]
    print(json.dumps({"sid": session.id, "pid": os.getpid(), "in_memory_cart": third["cart"]}), flush=True)
    sys.stdin.read()        # until killed (the test never closes our stdin)


if __name__ == "__main__":
    main()
