"""What the farm holds, as one node knows it: a version per WAR (pure code but for load/save).

Each farmed WAR has a record: its size and SHA-256, its farm version ``stamp``, the node that
published that version (``origin``) and whether the version is a removal (a tombstone, so a
node that was down when a WAR was undeployed removes it when it comes back, and a stale copy
never resurrects it). A stamp is milliseconds since the epoch, raised past every stamp this node
has seen (``next_stamp``): a hybrid clock, so a version published after another one seen here is
always newer, whatever the clocks of the machines say. Versions compare by (stamp, origin).

The records are kept in a JSON file in the Host's work folder (``work/<Engine>/<Host>/farm-wars.json``),
written whole by rename. ``catch_up_plan`` is the joining node's decision, from its own records and
the inventories its peers sent: which WARs to fetch (a newer version lives elsewhere) and which to
remove (the newest version is a removal).
"""
import collections
import json
import logging
import os
import time

from pycat.fileutil import atomic_write

log = logging.getLogger(__name__)

Record = collections.namedtuple("Record", "size sha256 stamp origin removed")


def version(record):
    return (record.stamp, record.origin)


class FarmState:
    def __init__(self, path=None, clock=time.time):
        self.path = path
        self.clock = clock
        self.records = {}          # war file name -> Record
        self.last_stamp = 0

    def get(self, war):
        return self.records.get(war)

    def next_stamp(self):
        self.last_stamp = max(int(self.clock() * 1000), self.last_stamp + 1)
        return self.last_stamp

    def seen(self, stamp):
        self.last_stamp = max(self.last_stamp, stamp)

    def is_newer(self, war, stamp, origin):
        """Whether (stamp, origin) is newer than what this node records for ``war``."""
        record = self.records.get(war)
        return record is None or (stamp, origin) > version(record)

    def put(self, war, record):
        self.records[war] = record
        self.seen(record.stamp)
        self.save()

    def live(self):
        """{war: Record} of the WARs the farm holds (removals left out)."""
        return {w: r for w, r in self.records.items() if not r.removed}

    # -- the file ------------------------------------------------------------------------------
    def load(self):
        if not self.path:
            return self
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            for war, item in data.get("wars", {}).items():
                self.records[war] = Record(int(item["size"]), bytes.fromhex(item["sha256"]), int(item["stamp"]),
                                           str(item["origin"]), bool(item["removed"]))
                self.seen(self.records[war].stamp)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("Farm: ignoring the unreadable farm records %s: %s", self.path, exc)
            self.records.clear()
        return self

    def save(self):
        if not self.path:
            return
        data = {"wars": {w: {"size": r.size, "sha256": r.sha256.hex(), "stamp": r.stamp, "origin": r.origin,
                             "removed": r.removed} for w, r in sorted(self.records.items())}}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with atomic_write(self.path, "w") as fh:
            json.dump(data, fh, indent=1)


def catch_up_plan(state, inventories):
    """From this node's ``state`` and its peers' ``inventories`` ({member name: [Entry...]}):
    (fetch, remove). ``fetch``: [(war, Entry, [member names holding that very version])] for each
    WAR whose newest version in the farm is live and newer than this node's; ``remove``:
    [(war, Entry)] for each WAR whose newest version is a removal newer than a live local one."""
    newest = {}
    holders = collections.defaultdict(list)
    for member, entries in inventories.items():
        for entry in entries:
            key = (entry.stamp, entry.origin)
            best = newest.get(entry.war)
            if best is None or key > (best.stamp, best.origin):
                newest[entry.war] = entry
    for member, entries in inventories.items():
        for entry in entries:
            best = newest[entry.war]
            if not entry.removed and (entry.stamp, entry.origin, entry.sha256) == (best.stamp, best.origin, best.sha256):
                holders[entry.war].append(member)
    fetch, remove = [], []
    for war, entry in sorted(newest.items()):
        if not state.is_newer(war, entry.stamp, entry.origin):
            continue
        if entry.removed:
            remove.append((war, entry))
        elif holders[war]:
            fetch.append((war, entry, holders[war]))
    return fetch, remove
