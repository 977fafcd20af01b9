"""WarWatcher: which WARs in the watch folder were added, changed or removed (Tomcat's WarWatcher).

``check()`` lists ``*.war`` in the folder (case-insensitive, as Tomcat; hidden names skipped)
and answers (ready, removed): ``ready`` the paths of WARs that are new or changed since they were
last reported *and* have stopped changing (the same signature at two checks in a row,
fileutil.StableFiles, so a WAR still being copied in is never sent half-written); ``removed`` the
names of WARs that were reported before and are gone. No sockets, no timers: the deployer calls
it every ``processDeployFrequency`` background runs, tests call it directly.
"""
import os

from pycat.fileutil import StableFiles, signature


class WarWatcher:
    def __init__(self, watch_dir):
        self.watch_dir = watch_dir
        self.known = {}              # file name -> signature when last reported
        self.pending = StableFiles()

    def scan(self):
        try:
            names = os.listdir(self.watch_dir)
        except OSError:
            return {}
        out = {}
        for name in names:
            if name.lower().endswith(".war") and not name.startswith("."):
                full = os.path.join(self.watch_dir, name)
                if os.path.isfile(full):
                    out[name] = full
        return out

    def check(self):
        present = self.scan()
        removed = sorted(name for name in self.known if name not in present)
        for name in removed:
            del self.known[name]
            self.pending.forget(os.path.join(self.watch_dir, name))
        ready = []
        for name, full in sorted(present.items()):
            sig = signature(full)
            if self.known.get(name) == sig:
                continue
            if self.pending.stable(full):
                self.known[name] = sig
                ready.append(full)
        return ready, removed

    def forget(self, name):
        """Report ``name`` again at its next stable check (a retry after a failed send)."""
        self.known.pop(name, None)
