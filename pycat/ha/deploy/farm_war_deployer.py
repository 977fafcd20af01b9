"""FarmWarDeployer: a WAR dropped into one node's watchDir is deployed on every node of the cluster.

``<Deployer className="org.apache.catalina.ha.deploy.FarmWarDeployer" tempDir= deployDir=
watchDir= watchEnabled= processDeployFrequency= maxValidTime=/>`` inside a ``<Cluster>``: in a
``<Host>``, or in the ``<Engine>`` (Tomcat refuses that; here it applies to the Engine's
defaultHost, or to the Host named by our ``host`` attribute). deployDir must be that Host's appBase.

What it does (the parts are small modules beside this one):

* **Watch** (``watchEnabled="true"``, usually on one node): every ``processDeployFrequency``
  cluster background runs, war_watcher.py looks at watchDir. A WAR that is new or changed, once it
  stopped changing, is *published*: copied into tempDir (its SHA-256 computed on the way, so what
  is sent is exactly what was hashed), given a new farm version (farm_state.py), deployed here
  through the Host's deployer and sent to every member. A WAR removed from watchDir is undeployed
  here and an undeploy message goes to every member.
* **Transfer** (file_message_factory.py, wire formats in farm_message.py): the WAR travels in
  chunks of ``chunkSize`` bytes, each sent with use_ack,sync to all members at once, so the next
  chunk leaves when every member wrote the last one: a sender holds one chunk, a receiver one
  chunk per transfer. The receiver checks the whole file's checksum before anything is deployed,
  then the Host's deployer (``host.deployer``, HostConfig, set by startup: this package never
  imports pycat.startup) puts it into appBase and deploys it as any redeploy: the new version
  starts beside the old one, and a WAR that fails to deploy (bad zip, unsafe entry, size limit,
  import error) leaves the old one serving. A receiver that refuses a transfer says so to the
  sender (an abort), which stops sending it there.
* **Catch-up** (Tomcat has none): when this deployer starts, after the channel and before the
  Host deploys anything (so before the HTTP port serves), it asks every member for its inventory
  and fetches each WAR whose newest version it lacks, and removes those whose newest version is
  a removal, waiting at most ``catchUpTimeout`` seconds.
* **Trust**: a WAR is code. On a channel without AuthInterceptor or EncryptInterceptor the start
  logs a warning that any host able to reach the cluster port can deploy code here.

Bounds: ``maxConcurrentTransfers`` incoming and outgoing transfers each, ``maxWarSize`` bytes a
transfer, ``maxValidTime`` seconds of silence before an incomplete transfer is dropped with its
file. Every file this deployer writes or removes is checked to lie inside tempDir, appBase or
watchDir. A malformed or forged message is dropped with a log line.
"""
import itertools
import logging
import os
import secrets
import time

import gevent
import gevent.event
import gevent.lock

from pycat.attrs import Attr
from pycat.errors import ChannelError, ConfigError, DeployError, ProtocolError
from pycat.fileutil import atomic_write, place_file, remove_inside, resolve_inside
from pycat.ha.cluster_listener import ClusterListener
from pycat.ha.cluster_message import ClusterMessage
from pycat.ha.deploy import farm_message as fm
from pycat.ha.deploy.farm_state import FarmState, Record, catch_up_plan
from pycat.ha.deploy.file_message_factory import PART_SUFFIX, Transfers, TransferError, file_digest, read_chunks
from pycat.ha.deploy.war_watcher import WarWatcher
from pycat.lifecycle import Lifecycle, LifecycleState
from pycat.tribes import channel as ch
from pycat.tribes.limits import PeerLog
from pycat.webapp.war import parse_context_name

log = logging.getLogger(__name__)

#: chunks wait until every member has written them (flow control: nothing piles up in memory)
CHUNK_OPTIONS = ch.USE_ACK | ch.SYNCHRONIZED_ACK
#: requests and answers: acknowledged on arrival, never synchronously (two nodes asking each
#: other at once cannot wait on each other)
REQUEST_OPTIONS = ch.USE_ACK
NO_SHA = b"\0" * fm.SHA_BYTES
PROGRESS_FROM = 8 * 1024 * 1024       # files at least this large log their progress
MB = 1024.0 * 1024.0


class FarmWarDeployer(Lifecycle, ClusterListener):
    kinds = (fm.KIND,)

    temp_dir = Attr(str, None, "Folder for WARs being received or sent (default: <catalina.base>/temp/war-temp)")
    deploy_dir = Attr(str, None, "Where farmed WARs are deployed: the Host's appBase (the default; "
                      "another folder is refused)")
    watch_dir = Attr(str, None, "Folder watched for WARs to farm out (with watchEnabled)")
    watch_enabled = Attr(bool, False, "Watch watchDir and farm out what appears, changes or disappears there")
    process_deploy_frequency = Attr(int, 2, "Cluster background runs between two looks at watchDir")
    max_valid_time = Attr(int, 300, "Seconds an incomplete incoming transfer may stay silent before it is "
                          "dropped with its file (negative: never)")
    host_name = Attr(str, None, "Host the farm deploys to when the Cluster is the Engine's "
                     "(default: the Engine's defaultHost)", xml="host")
    chunk_size = Attr(int, 1024 * 1024, "Bytes of a WAR per cluster message (1 KB .. 8 MB)")
    max_concurrent_transfers = Attr(int, 4, "Transfers at once, incoming and outgoing each")
    max_war_size = Attr(int, 1 << 30, "Largest WAR a node takes from the farm, in bytes (-1: no limit)")
    catch_up = Attr(bool, True, "At start, fetch from the farm the WARs this node lacks or has in an older version")
    catch_up_timeout = Attr(float, 120.0, "Seconds the catch-up may take at start")
    request_timeout = Attr(float, 10.0, "Seconds to wait for the members' inventories")

    def __init__(self):
        Lifecycle.__init__(self)
        ClusterListener.__init__(self)
        self.name = "farm"
        self.host = None                  # the Host object farmed WARs go to
        self.transfers = None
        self.state_records = None         # FarmState
        self.watcher = None
        self._accepting = False
        self._runs = 0
        self._serial = itertools.count(1)
        self._send_slots = None
        self._install_lock = gevent.lock.RLock()
        self._aborts = {}                 # outgoing transfer id -> {member name: reason}
        self._inventory_waits = {}        # request id -> [wanted names, {name: entries}, Event]
        self._fetch_waits = {}            # war -> [stamp, origin, AsyncResult]
        self._peer_log = PeerLog(log, interval=10.0)

    # -- configuration --------------------------------------------------------------------------
    def _find_host(self):
        container = getattr(self.cluster, "container", None)
        if container is None:
            raise ConfigError("the FarmWarDeployer's <Cluster> is in no container")
        if hasattr(container, "get_app_base_path"):
            return container
        name = self.host_name or getattr(container, "default_host", None)
        find = getattr(container, "find_child", None)
        host = find(name) if find is not None and name else None
        if host is None or not hasattr(host, "get_app_base_path"):
            raise ConfigError("FarmWarDeployer: the Engine has no Host named %r (set host= on <Deployer>)" % name)
        return host

    def _base_path(self, value, default):
        base = getattr(self.host, "catalina_base", None) or os.getcwd()
        path = os.path.expanduser(value or default)
        return os.path.abspath(path if os.path.isabs(path) else os.path.join(base, path))

    def _state_path(self):
        engine = self.host.get_engine() if hasattr(self.host, "get_engine") else None
        base = getattr(self.host, "catalina_base", None) or os.getcwd()
        return os.path.join(base, "work", getattr(engine, "name", None) or "Catalina", self.host.name,
                            "farm-wars.json")

    @property
    def local_name(self):
        member = self.cluster.get_local_member() if self.cluster is not None else None
        return getattr(member, "name", "") or ""

    # -- lifecycle ------------------------------------------------------------------------------
    def _start(self):
        if self.cluster is None:
            raise ConfigError("FarmWarDeployer needs a <Cluster>")
        if not 1024 <= self.chunk_size <= fm.MAX_CHUNK:
            raise ConfigError("FarmWarDeployer chunkSize must be 1024 .. %d, not %d" % (fm.MAX_CHUNK, self.chunk_size))
        self.host = self._find_host()
        app_base = self.host.get_app_base_path()
        if self.deploy_dir and os.path.realpath(self._base_path(self.deploy_dir, "")) != os.path.realpath(app_base):
            raise ConfigError("FarmWarDeployer deployDir %s is not the appBase %s of Host %s: farmed WARs are "
                              "deployed by the Host, from its appBase" % (self.deploy_dir, app_base, self.host.name))
        self.temp_path = self._base_path(self.temp_dir, os.path.join("temp", "war-temp"))
        os.makedirs(self.temp_path, exist_ok=True)
        self.transfers = Transfers(self.temp_path, self.max_concurrent_transfers, self.max_war_size,
                                   self.max_valid_time)
        left = self.transfers.sweep()
        if left:
            log.info("Farm: removed %d partial transfer file(s) an earlier run left in %s", left, self.temp_path)
        self._send_slots = gevent.lock.BoundedSemaphore(max(1, self.max_concurrent_transfers))
        self.state_records = FarmState(self._state_path()).load()
        if self.watch_enabled:
            if not self.watch_dir:
                raise ConfigError("FarmWarDeployer watchEnabled=\"true\" needs watchDir")
            self.watch_path = self._base_path(self.watch_dir, "")
            if os.path.realpath(self.watch_path) == os.path.realpath(app_base):
                raise ConfigError("FarmWarDeployer watchDir must not be the appBase %s: the farm deploys into "
                                  "appBase what it finds in watchDir" % app_base)
            os.makedirs(self.watch_path, exist_ok=True)
            self.watcher = WarWatcher(self.watch_path)
        if not self.cluster.trusted:
            log.warning("Farm: the cluster channel has no AuthInterceptor or EncryptInterceptor: any host that "
                        "can reach this node's cluster port can deploy code (a WAR) on it. Add "
                        "<Interceptor className=\"pycat.AuthInterceptor\" .../> (or an EncryptInterceptor) to the "
                        "<Channel> of every node, or keep the cluster port on a private network")
        self._accepting = True
        log.info("Farm: deploying to Host %s (appBase %s), tempDir %s%s", self.host.name, app_base, self.temp_path,
                 ", watching %s" % self.watch_path if self.watcher else "")
        if self.catch_up:
            try:
                self._catch_up()
            except Exception:        # a node that cannot catch up still starts, with what it has
                log.exception("Farm: catching up with the farm failed")

    def _stop(self):
        self._accepting = False
        if self.transfers is not None:
            self.transfers.clear()
        for waiter in self._inventory_waits.values():
            waiter[2].set()
        for waiter in self._fetch_waits.values():
            waiter[2].set(False)

    def background_process(self):
        """The cluster's background step: drop silent transfers; every processDeployFrequency
        runs, look at watchDir."""
        if not self._accepting:
            return
        for receiver in self.transfers.expire():
            log.warning("Farm: dropped the incomplete transfer of %s from %s (%d of %d bytes): nothing arrived "
                        "for %d s (maxValidTime); its partial file is removed", receiver.war, receiver.key[0],
                        receiver.received, receiver.size, self.max_valid_time)
        self._runs += 1
        if self.watcher is not None and self._runs % max(1, self.process_deploy_frequency) == 0:
            self.check_watch_dir()

    def check_watch_dir(self):
        ready, removed = self.watcher.check()
        for path in ready:
            self.spawn(self._safely, self.publish, path)
        for name in removed:
            self.spawn(self._safely, self.unpublish, name)

    def _safely(self, func, *args):
        """Run func, logging what it raises: a failed farm operation never fails the deployer."""
        try:
            return func(*args)
        except (DeployError, ProtocolError, TransferError, OSError) as exc:
            log.error("Farm: %s failed: %s", getattr(func, "__name__", func), exc)
        except Exception:
            log.exception("Farm: %s failed", getattr(func, "__name__", func))
        return None

    # -- publishing (this node's watchDir, pycat farm deploy/undeploy) ---------------------------
    def publish(self, source, war=None):
        """Farm out the WAR file ``source`` (as ``war``, default its file name): deploy it here and
        send it to every member. Returns (deployed here, members that took it, members)."""
        war = check_war_context(fm.check_war_name(war or os.path.basename(source)))
        cname = parse_context_name(war)
        snapshot = self._temp_file(war, ".farm-out")
        try:
            sha, size = self._snapshot(source, snapshot)
            current = self.state_records.get(war)
            if current is not None and not current.removed and current.sha256 == sha:
                # e.g. the watching node restarted and sees its watchDir anew: same bytes, same version
                log.info("Farm: %s is the farmed version %d already (same sha256); not sent again", war,
                         current.stamp)
                return True, 0, len(self.cluster.get_members())
            record = Record(size, sha, self.state_records.next_stamp(), self.local_name, False)
            log.info("Farm: publishing %s (%.1f MB, sha256 %s, version %d)", war, size / MB, sha.hex()[:12],
                     record.stamp)
            members = self.cluster.get_members()
            # the members receive while this node deploys: both take a while for a large WAR
            sender = self.spawn(self._safely, self._send_file, snapshot, war, record, members) if members else None
            try:
                deployed = self._deploy_here(cname, war, snapshot, record, move=False)
            finally:
                sent = sender.get() if sender is not None else []
        finally:
            remove_inside(snapshot, [self.temp_path])
        return deployed, len(sent or ()), len(members)

    def unpublish(self, war):
        """Take ``war`` out of the farm: undeploy it here, remove it from watchDir, tell every
        member. Returns the number of members told."""
        war = check_war_context(fm.check_war_name(war))
        cname = parse_context_name(war)
        stamp = self.state_records.next_stamp()
        log.info("Farm: undeploying %s everywhere (version %d)", cname.display, stamp)
        self.cluster.send(ClusterMessage(fm.KIND, fm.encode(fm.Undeploy(war, stamp))), options=REQUEST_OPTIONS)
        self._undeploy_here(cname, war, Record(0, NO_SHA, stamp, self.local_name, True))
        if self.watcher is not None:
            path = os.path.join(self.watch_path, war)
            if os.path.lexists(path):
                remove_inside(path, [self.watch_path])
            self.watcher.forget(war)
        return len(self.cluster.get_members())

    def _temp_file(self, war, suffix):
        path = os.path.join(self.temp_path, "%s.%d.s%d%s" % (war, os.getpid(), next(self._serial), suffix))
        if resolve_inside(path, [self.temp_path]) is None:
            raise DeployError("%s would not lie inside tempDir %s" % (path, self.temp_path))
        return path

    def _snapshot(self, source, target):
        """Copy ``source`` to ``target`` and hash the bytes copied: what is sent is what was hashed,
        whatever happens to ``source`` meanwhile."""
        def copy():
            import hashlib
            sha, size = hashlib.sha256(), 0
            with open(source, "rb") as src, atomic_write(target, "wb") as out:
                while True:
                    data = src.read(1024 * 1024)
                    if not data:
                        break
                    sha.update(data)
                    out.write(data)
                    size += len(data)
            return sha.digest(), size
        return _blocking(copy)

    def _send_file(self, path, war, record, members, transfer=None):
        """Send the file at ``path`` to ``members`` in chunks; the members that took every chunk."""
        transfer = transfer or secrets.token_hex(16)
        aborted = self._aborts[transfer] = {}
        targets = list(members)
        started = time.monotonic()
        shown = 0
        try:
            with self._send_slots, open(path, "rb") as fh:
                for offset, data in read_chunks(fh, record.size, self.chunk_size):
                    targets = [m for m in targets if m.name not in aborted]
                    if not targets:
                        break
                    body = fm.encode(fm.Chunk(transfer, war, record.size, record.sha256, record.stamp,
                                              record.origin, offset, data))
                    message = ClusterMessage(fm.KIND, body, transfer)
                    try:
                        self.cluster.channel.send(targets, message.to_wire(), CHUNK_OPTIONS)
                    except ChannelError as exc:
                        for member, reason in (exc.faulty or {}).items():
                            log.error("Farm: sending %s to %s failed at offset %d: %s; that member is left out",
                                      war, getattr(member, "name", member), offset, reason)
                            aborted[getattr(member, "name", str(member))] = str(reason)
                        if not exc.faulty:
                            raise
                    done = offset + len(data)
                    if record.size >= PROGRESS_FROM and done * 4 // record.size > shown:
                        shown = done * 4 // record.size
                        elapsed = max(time.monotonic() - started, 1e-6)
                        log.info("Farm: sending %s to %d member(s): %d%% (%.1f of %.1f MB, %.1f MB/s)", war,
                                 len(targets), 100 * done // record.size, done / MB, record.size / MB,
                                 done / MB / elapsed)
        finally:
            self._aborts.pop(transfer, None)
        sent = [m for m in targets if m.name not in aborted]
        for name, reason in aborted.items():
            log.warning("Farm: %s did not take %s: %s", name, war, reason)
        log.info("Farm: sent %s (%.1f MB) to %d member(s) in %.2f s", war, record.size / MB, len(sent),
                 time.monotonic() - started)
        return sent

    # -- deploying here --------------------------------------------------------------------------
    def _deploy_here(self, cname, war, path, record, move):
        """Put the WAR at ``path`` into appBase and deploy it (through the Host's deployer once the
        Host runs; before that, e.g. during the catch-up, the Host deploys it when it starts).
        Records the version when it is deployed. True on success; failures are logged."""
        with self._install_lock:
            if not self.state_records.is_newer(war, record.stamp, record.origin):
                log.info("Farm: %s version %d is not newer than the one here; not deployed", war, record.stamp)
                return False
            deployer = getattr(self.host, "deployer", None)
            if deployer is not None and self.host.state is LifecycleState.STARTED:
                try:
                    deployer.install_war(cname, path, move=move)
                except DeployError as exc:
                    log.error("Farm: %s was not deployed: %s", war, exc)
                    return False
            else:
                self._place_war(war, path, move)
            self.state_records.put(war, record)
            log.info("Farm: %s version %d (sha256 %s) is deployed here", cname.display, record.stamp,
                     record.sha256.hex()[:12])
            self._fetched(war, record)
            return True

    def _place_war(self, war, path, move):
        app_base = self.host.get_app_base_path()
        target = os.path.join(app_base, war)
        if resolve_inside(target, [app_base]) is None:
            raise DeployError("%s would not lie inside appBase %s" % (target, app_base))
        os.makedirs(app_base, exist_ok=True)
        place_file(path, target, move)

    def _undeploy_here(self, cname, war, record):
        with self._install_lock:
            if not self.state_records.is_newer(war, record.stamp, record.origin):
                log.info("Farm: the undeploy of %s (version %d) is older than what is here; ignored", war, record.stamp)
                return False
            deployer = getattr(self.host, "deployer", None)
            if deployer is not None and self.host.state is LifecycleState.STARTED:
                deployer.remove_app(cname, missing_ok=True)
            else:
                # before the Host deploys (a catch-up): the WAR and the folder it was expanded into
                # (one carrying the expansion's tracker; a folder of the user's own is left alone)
                app_base = self.host.get_app_base_path()
                remove_inside(os.path.join(app_base, war), [app_base])
                folder = os.path.join(app_base, cname.base_name)
                if os.path.isfile(os.path.join(folder, "META-INF", "war-tracker")):
                    remove_inside(folder, [app_base])
            self.state_records.put(war, record)
            log.info("Farm: %s is undeployed here (version %d)", cname.display, record.stamp)
            return True

    # -- receiving -------------------------------------------------------------------------------
    def accept(self, msg):
        return msg.kind == fm.KIND

    def message_received(self, msg):
        sender = msg.address
        name = getattr(sender, "name", None) or str(sender)
        if not self._accepting:
            log.debug("Farm: not started; %r dropped", msg)
            return
        try:
            message = fm.decode(msg.body, check_war_context)
        except ProtocolError as exc:
            self._peer_log.log(logging.WARNING, (name, "malformed"), "Farm: dropped a malformed farm message from %s: %s", name, exc)
            return
        kind = type(message)
        if kind is fm.Chunk:
            self._chunk(sender, name, message)
        elif kind is fm.Abort:
            self._abort(name, message)
        elif kind is fm.Undeploy:
            self.spawn(self._safely, self._undeploy_received, name, message)
        elif kind is fm.InventoryRequest:
            self.spawn(self._safely, self._answer_inventory, sender, message.request)
        elif kind is fm.Inventory:
            waiter = self._inventory_waits.get(message.request)
            if waiter is not None:
                waiter[1][name] = message.entries
                if waiter[0] <= set(waiter[1]):
                    waiter[2].set()
        elif kind is fm.Fetch:
            self.spawn(self._safely, self._answer_fetch, sender, message)

    def _chunk(self, sender, name, chunk):
        try:
            receiver = self.transfers.chunk(name, chunk)
        except TransferError as exc:
            self._peer_log.log(logging.WARNING, (name, "refused"), "Farm: refused %s from %s: %s", chunk.war, name, exc)
            self.spawn(self._safely, self._send_to, sender, fm.Abort(chunk.transfer, str(exc)))
            self._fetch_failed(chunk.war)
            return
        if receiver is None:
            if chunk.offset == 0:
                log.info("Farm: receiving %s (%.1f MB, version %d) from %s", chunk.war, chunk.size / MB,
                         chunk.stamp, name)
            return
        elapsed = max(time.monotonic() - receiver.started, 1e-6)
        log.info("Farm: received %s (%.1f MB in %.2f s, %.1f MB/s) from %s; checksum verified", receiver.war,
                 receiver.size / MB, elapsed, receiver.size / MB / elapsed, name)
        self.spawn(self._safely, self._install_received, receiver)

    def _install_received(self, receiver):
        try:
            record = Record(receiver.size, receiver.sha256, receiver.stamp, receiver.origin, False)
            self.state_records.seen(receiver.stamp)
            if not self._deploy_here(parse_context_name(receiver.war), receiver.war, receiver.path, record, move=True):
                self._fetch_failed(receiver.war)
        finally:
            if os.path.lexists(receiver.path):
                remove_inside(receiver.path, [self.temp_path])

    def _abort(self, name, abort):
        aborted = self._aborts.get(abort.transfer)
        if aborted is not None:
            aborted[name] = abort.reason
            return
        for war, waiter in list(self._fetch_waits.items()):
            if waiter[3] == abort.transfer:
                log.warning("Farm: %s cannot send %s: %s", name, war, abort.reason)
                waiter[2].set(False)

    def _undeploy_received(self, name, message):
        self.state_records.seen(message.stamp)
        self._undeploy_here(parse_context_name(message.war), message.war,
                            Record(0, NO_SHA, message.stamp, name, True))

    def _send_to(self, member, message):
        self.cluster.send(ClusterMessage(fm.KIND, fm.encode(message)), dest=member, options=REQUEST_OPTIONS)

    # -- inventories and catch-up -----------------------------------------------------------------
    def inventory(self):
        """This node's farm records as inventory entries."""
        entries = []
        for war, record in sorted(self.state_records.records.items()):
            running = False
            if not record.removed:
                try:
                    ctx = self.host.find_child(parse_context_name(war).name)
                    running = ctx is not None and ctx.state is LifecycleState.STARTED
                except DeployError:
                    pass
            entries.append(fm.Entry(war, record.size, record.sha256, record.stamp, record.origin, record.removed,
                                    running))
        return entries

    def _answer_inventory(self, sender, request):
        self._send_to(sender, fm.Inventory(request, self.inventory()))

    def ask_inventories(self, members=None, timeout=None):
        """{member name: [Entry...]} from ``members`` (default: all), waiting at most ``timeout``
        seconds (default requestTimeout) for the answers; members that do not answer are left out."""
        members = self.cluster.get_members() if members is None else members
        if not members:
            return {}
        request = secrets.token_hex(16)
        waiter = self._inventory_waits[request] = [{m.name for m in members}, {}, gevent.event.Event()]
        try:
            message = ClusterMessage(fm.KIND, fm.encode(fm.InventoryRequest(request)))
            try:
                self.cluster.channel.send(members, message.to_wire(), REQUEST_OPTIONS)
            except ChannelError as exc:
                for member in exc.faulty or {}:
                    waiter[0].discard(getattr(member, "name", member))
            if waiter[0]:
                waiter[2].wait(self.request_timeout if timeout is None else timeout)
            return dict(waiter[1])
        finally:
            self._inventory_waits.pop(request, None)

    def _answer_fetch(self, sender, fetch):
        record = self.state_records.get(fetch.war)
        path = os.path.join(self.host.get_app_base_path(), fetch.war)
        reason = None
        if record is None or record.removed or record.sha256 != fetch.sha256:
            reason = "this node does not hold that version of %s" % fetch.war
        elif not os.path.isfile(path):
            reason = "%s is not in this node's appBase" % fetch.war
        else:
            sha, size = _blocking(file_digest, path)
            if sha != record.sha256:
                reason = "%s in this node's appBase is not the farmed version (changed by hand?)" % fetch.war
        if reason is not None:
            log.warning("Farm: %s asked for %s: %s", getattr(sender, "name", sender), fetch.war, reason)
            self._send_to(sender, fm.Abort(fetch.request, reason))
            return
        self._send_file(path, fetch.war, record, [sender], transfer=fetch.request)

    def _fetched(self, war, record):
        waiter = self._fetch_waits.get(war)
        if waiter is not None and (record.stamp, record.origin) >= (waiter[0], waiter[1]):
            waiter[2].set(True)

    def _fetch_failed(self, war):
        waiter = self._fetch_waits.get(war)
        if waiter is not None:
            waiter[2].set(False)

    def _catch_up(self):
        members = self.cluster.get_members()
        if not members:
            log.info("Farm: no other member yet; nothing to catch up with")
            return
        deadline = time.monotonic() + self.catch_up_timeout
        answers = self.ask_inventories(members)
        fetch, remove = catch_up_plan(self.state_records, answers)
        log.info("Farm: catching up with %d member(s): %d WAR(s) to fetch, %d to remove", len(answers),
                 len(fetch), len(remove))
        for war, entry in remove:
            self._undeploy_here(parse_context_name(war), war, Record(0, NO_SHA, entry.stamp, entry.origin, True))
        by_name = {m.name: m for m in members}
        for war, entry, holders in fetch:
            for holder in holders:
                member = by_name.get(holder)
                remaining = deadline - time.monotonic()
                if member is None or remaining <= 0:
                    continue
                request = secrets.token_hex(16)
                result = gevent.event.AsyncResult()
                self._fetch_waits[war] = [entry.stamp, entry.origin, result, request]
                try:
                    self._send_to(member, fm.Fetch(request, war, entry.sha256))
                    ok = result.get(timeout=remaining)
                except gevent.Timeout:
                    ok = False
                finally:
                    self._fetch_waits.pop(war, None)
                if ok:
                    break
                log.warning("Farm: fetching %s from %s failed; %s", war, holder,
                            "trying another member" if holder != holders[-1] else "giving up")
            else:
                log.error("Farm: could not catch up %s version %d; this node keeps what it had", war, entry.stamp)

    # -- for pycat farm list ----------------------------------------------------------------------
    def farm_list(self):
        """What the farm holds: [{war, path, version, sha256, size, origin, nodes: {node: state}}],
        from this node's records and the members' inventories."""
        inventories = {"this node (%s)" % self.local_name: self.inventory()}
        inventories.update(self.ask_inventories())
        newest = {}
        for entries in inventories.values():
            for e in entries:
                if e.war not in newest or (e.stamp, e.origin) > (newest[e.war].stamp, newest[e.war].origin):
                    newest[e.war] = e
        out = []
        for war, best in sorted(newest.items()):
            if best.removed:
                continue
            nodes = {}
            for node, entries in inventories.items():
                mine = next((e for e in entries if e.war == war), None)
                if mine is None or mine.removed:
                    nodes[node] = "absent"
                elif (mine.stamp, mine.origin) != (best.stamp, best.origin):
                    nodes[node] = "older version %d%s" % (mine.stamp, ", running" if mine.running else "")
                else:
                    nodes[node] = "running" if mine.running else "held, not running"
            out.append({"war": war, "path": parse_context_name(war).display, "version": best.stamp,
                        "sha256": best.sha256.hex(), "size": best.size, "origin": best.origin, "nodes": nodes})
        return out


def check_war_context(war):
    """``war`` if it is the file name of the app it names (war.parse_context_name's rule: the
    base name of the ContextName, plus ``.war``); else DeployError."""
    cname = parse_context_name(war)
    if cname.base_name + ".war" != war:
        raise DeployError("WAR name %r is not the file name of %s (%s.war)" % (war[:80], cname.display, cname.base_name))
    return war


def _blocking(func, *args):
    """Run blocking file work (copying, hashing a large WAR) in the hub's thread pool, so the node
    keeps answering meanwhile."""
    try:
        pool = gevent.get_hub().threadpool
    except Exception:
        return func(*args)
    return pool.apply(func, args)


__all__ = ["FarmWarDeployer", "PART_SUFFIX"]
