"""SimpleTcpCluster: a ``<Cluster>`` runs its channel in this node (Tomcat's SimpleTcpCluster).

The cluster owns a Tribes channel (``<Channel>``; when none is configured, Tomcat's default: a
GroupChannel with McastService 228.0.0.4:45564 and an NioReceiver on auto:4000, autoBind 100).
A GroupChannel configured without interceptors gets MessageDispatchInterceptor and
TcpFailureDetector, as Tomcat's checkDefaults does. ``start()`` starts the channel with
``channelStartOptions`` and listens to it: membership changes are logged as Tomcat logs them
("Replication member added:[...]") and fired as lifecycle events (before/after_member_register,
before/after_member_unregister); received ClusterMessages go to the cluster listeners.

``send(message, dest=None, options=None)`` sends a ClusterMessage to one member or to all of
them with ``channelSendOptions`` by default; failures are logged, never raised (Tomcat's rule),
and fired as ``send_message_failure`` when ``notifyLifecycleListenerOnFailure`` is on.

The manager seam (Tomcat's ClusterManager contract): a ``<distributable/>`` Context under this
cluster with no ``<Manager>`` of its own asks ``create_manager(context)``; the cluster clones its
``<Manager>`` template (``set_manager_template``; by default a StandardManager until DeltaManager
exists) and registers the clone under the app's manager name (``get_manager_name``: the Context's
name, prefixed ``host#`` when the cluster sits in the Engine). A distributable Context's own
``<Manager>`` is registered the same way. ``get_manager(name)`` and ``managers`` answer who is
registered; a manager is unregistered when it stops (``remove_manager``). A redeploy's new
Context registers under the same name while the old one drains: the newer registration stays.

Defaults (Tomcat's checkDefaults), so the one-line ``<Cluster className="...SimpleTcpCluster"/>``
replicates sessions: the manager template is a DeltaManager; with no ``<ClusterListener>`` and a
DeltaManager template a ClusterSessionListener is added; with no ``<Valve>`` a JvmRouteBinderValve
and a ReplicationValve. Cluster valves go into the pipeline of the cluster's container (Engine or
Host) when the cluster starts, and leave it when it stops.

``trusted``: whether the channel authenticates its peers (an AuthInterceptor or EncryptInterceptor
in its stack). Session managers load dill-serialised attribute values only from a trusted channel.

``<Deployer>`` (the FarmWarDeployer, pycat/ha/deploy/) is started after the channel, hears the
cluster's "farm" messages, and runs its background step on the cluster's; it stops before the
channel does.
"""
import collections
import logging

from pycat.attrs import Attr
from pycat.errors import ChannelError, ConfigError
from pycat.lifecycle import EVENTS, PERIODIC_EVENT, Lifecycle, LifecycleState
from pycat.session.manager import ManagerBase
from pycat.tribes import channel as ch
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.group.interceptors.auth import AuthInterceptor
from pycat.tribes.group.interceptors.encrypt import EncryptInterceptor
from pycat.tribes.limits import PeerLog
from pycat.ha.cluster_message import ClusterMessage

log = logging.getLogger(__name__)

BEFORE_MEMBER_REGISTER = "before_member_register"
AFTER_MEMBER_REGISTER = "after_member_register"
BEFORE_MEMBER_UNREGISTER = "before_member_unregister"
AFTER_MEMBER_UNREGISTER = "after_member_unregister"
SEND_MESSAGE_FAILURE = "send_message_failure"
RECEIVE_MESSAGE_FAILURE = "receive_message_failure"

#: data of the *_message_failure events (Tomcat's SendMessageData)
SendMessageData = collections.namedtuple("SendMessageData", "message destination exception")

class _SendOptionsAttr(Attr):
    """channelSendOptions: an int or Tomcat's names; a value of 0 is ignored, as Tomcat's
    String setter ignores it."""

    def __set__(self, obj, value):
        value = self.convert(value)
        if value:
            obj.__dict__[self.name] = value


class SimpleTcpCluster(Lifecycle):
    channel_send_options = _SendOptionsAttr(ch.parse_send_options, ch.ASYNCHRONOUS,
                                            "default send options: an int or names such as async, use_ack,sync")
    channel_start_options = Attr(int, ch.DEFAULT, "channel parts to start: SND_RX 1 | SND_TX 2 | MBR_RX 4 | MBR_TX 8")
    heartbeat_background_enabled = Attr(bool, False, "the container background thread runs the channel "
                                        "heartbeat (the channel's own heartbeat is turned off)")
    notify_lifecycle_listener_on_failure = Attr(bool, False, "fire send/receive_message_failure lifecycle events")
    cluster_name = Attr(str, None, "name of the cluster (default: the container's name)")

    def __init__(self):
        super().__init__()
        self.channel = None
        self.container = None
        self.cluster_listeners = []
        self.valves = []
        self.manager_template = None
        self.deployer = None          # <Deployer>: the FarmWarDeployer
        self._managers = {}           # manager name -> the registered manager
        self._send_failures = PeerLog(log, interval=10.0)

    @property
    def component_name(self):
        return "SimpleTcpCluster[%s]" % self.get_cluster_name()

    # -- configuration (digester parent methods) ---------------------------------------------
    def set_container(self, container):
        self.container = container

    def get_cluster_name(self):
        if self.cluster_name:
            return self.cluster_name
        return getattr(self.container, "name", None) or "Cluster"

    def set_channel(self, channel):
        self.channel = channel

    def get_channel(self):
        """The channel; Tomcat's default GroupChannel when none was configured."""
        if self.channel is None:
            self.channel = GroupChannel()
        return self.channel

    def get_channel_send_options_name(self):
        return ch.options_to_string(self.channel_send_options)

    def add_cluster_listener(self, listener):
        if listener in self.cluster_listeners:
            return
        self.cluster_listeners.append(listener)
        setter = getattr(listener, "set_cluster", None)
        if callable(setter):
            setter(self)

    def remove_cluster_listener(self, listener):
        if listener in self.cluster_listeners:
            self.cluster_listeners.remove(listener)
            setter = getattr(listener, "set_cluster", None)
            if callable(setter):
                setter(None)

    # -- the manager seam (Tomcat's ClusterManager contract) ----------------------------------
    def set_manager_template(self, manager):
        """<Manager> inside <Cluster>: the template cloned for each distributable Context."""
        if not isinstance(manager, ManagerBase):
            raise ConfigError("<Manager> inside <Cluster> must be a session manager, not %s"
                              % type(manager).__name__)
        self.manager_template = manager

    def get_manager_template(self):
        """The template; a DeltaManager when none was configured (Tomcat's default)."""
        if self.manager_template is None:
            from pycat.ha.session.delta_manager import DeltaManager
            self.manager_template = DeltaManager()
        return self.manager_template

    def get_manager_name(self, context):
        """Tomcat's getManagerName: the Context's name, prefixed with its Host's name and "#"
        when this cluster is the Engine's (one cluster, several Hosts)."""
        name = getattr(context, "name", None) or "/"
        host = getattr(context, "parent", None)
        if self.container is not None and host is not None and host is not self.container \
                and getattr(host, "parent", None) is self.container:
            prefix = (getattr(host, "name", None) or "") + "#"
            if not name.startswith(prefix):
                name = prefix + name
        return name

    def create_manager(self, context):
        """A clone of the template for ``context``, registered under the app's manager name."""
        manager = self.get_manager_template().clone()
        self.register_manager(manager, context)
        return manager

    def register_manager(self, manager, context=None):
        """Register ``manager`` (of ``context``, else of ``manager.context``) by app name; it is
        unregistered when it stops. A later registration under the same name replaces an
        earlier one (a redeploy's new Context starts before the old one stops)."""
        context = context if context is not None else getattr(manager, "context", None)
        name = self.get_manager_name(context)
        previous = self._managers.get(name)
        if previous is manager:
            return name
        self._managers[name] = manager
        manager.__dict__["_cluster_manager_name"] = name
        if hasattr(manager, "set_cluster"):
            manager.set_cluster(self)
        self._listen_for(manager)
        if self._manager_lifecycle not in getattr(manager, "_lifecycle_listeners", ()):
            manager.add_lifecycle_listener(self._manager_lifecycle)
        log.debug("%s: manager %s registered as %r%s", self.component_name, manager.component_name, name,
                  " (replacing %s)" % previous.component_name if previous is not None else "")
        return name

    def _listen_for(self, manager):
        """A DeltaManager hears its messages through a ClusterSessionListener. Tomcat adds one
        only when the template is a DeltaManager; a Context's own DeltaManager under a cluster
        whose template is a BackupManager (mixed managers) would replicate nothing, so one is
        added here, saying so."""
        from pycat.ha.session.delta_manager import DeltaManager
        if not isinstance(manager, DeltaManager):
            return
        from pycat.ha.session.delta_manager import KIND
        if any(KIND in getattr(listener, "kinds", ()) for listener in self.cluster_listeners):
            return
        from pycat.ha.session.listener import ClusterSessionListener
        log.info("%s: %s is a DeltaManager and the cluster has no ClusterSessionListener; adding one",
                 self.component_name, manager.component_name)
        self.add_cluster_listener(ClusterSessionListener())

    def _manager_lifecycle(self, event):
        if event.type == EVENTS[LifecycleState.STOPPED] or event.type == EVENTS[LifecycleState.DESTROYED]:
            self.remove_manager(event.source)

    def remove_manager(self, manager):
        """Unregister ``manager`` (a no-op when another one now holds its name)."""
        name = manager.__dict__.get("_cluster_manager_name")
        if name is not None and self._managers.get(name) is manager:
            del self._managers[name]
            log.debug("%s: manager %r unregistered", self.component_name, name)
        try:
            manager.remove_lifecycle_listener(self._manager_lifecycle)
        except ValueError:
            pass

    unregister_manager = remove_manager

    def get_manager(self, name):
        return self._managers.get(name)

    @property
    def managers(self):
        """{manager name: manager} of the registered managers (a copy)."""
        return dict(self._managers)

    def add_valve(self, valve):
        """A cluster valve (ReplicationValve, JvmRouteBinderValve): it joins the container's
        pipeline while the cluster runs."""
        if valve not in self.valves:
            self.valves.append(valve)
            setter = getattr(valve, "set_cluster", None)
            if callable(setter):
                setter(self)

    def set_cluster_deployer(self, deployer):
        """<Deployer>: started with the cluster, after its channel (Tomcat's clusterDeployer)."""
        if not all(callable(getattr(deployer, m, None)) for m in ("start", "stop", "accept", "message_received")):
            raise ConfigError("<Deployer> inside <Cluster> must be a cluster deployer (a FarmWarDeployer), not %s"
                              % type(deployer).__name__)
        self.deployer = deployer
        setter = getattr(deployer, "set_cluster", None)
        if callable(setter):
            setter(self)

    def get_cluster_deployer(self):
        return self.deployer

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def trusted(self):
        """Whether every message the channel delivers passed an AuthInterceptor or EncryptInterceptor
        (fixed once the channel runs: its interceptors cannot change then)."""
        trusted = self.__dict__.get("_trusted")
        if trusted is None:
            channel = self.channel
            interceptors = getattr(channel, "interceptors", None) or ()
            trusted = any(isinstance(i, (AuthInterceptor, EncryptInterceptor)) for i in interceptors)
            if self.state.available:
                self.__dict__["_trusted"] = trusted
        return trusted

    def _check_defaults(self):
        template = self.get_manager_template()
        from pycat.ha.session.delta_manager import DeltaManager
        if not self.cluster_listeners and isinstance(template, DeltaManager):
            from pycat.ha.session.listener import ClusterSessionListener
            self.add_cluster_listener(ClusterSessionListener())
        if not self.valves:
            from pycat.ha.jvm_route_binder import JvmRouteBinderValve
            from pycat.ha.replication_valve import ReplicationValve
            self.add_valve(JvmRouteBinderValve())
            self.add_valve(ReplicationValve())
        channel = self.get_channel()
        if isinstance(channel, GroupChannel) and not channel.interceptors:
            from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
            from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
            channel.add_interceptor(MessageDispatchInterceptor())
            channel.add_interceptor(TcpFailureDetector())
        if self.heartbeat_background_enabled and hasattr(channel, "heartbeat_enabled"):
            # the container's background thread beats instead (background_process)
            channel.heartbeat_enabled = False
        return channel

    def _start(self):
        channel = self._check_defaults()
        if hasattr(channel, "name"):
            channel.name = self.get_cluster_name() + "-Channel"
        channel.add_membership_listener(self)
        channel.add_channel_listener(self)
        log.info("%s: starting the cluster channel (start options %d)", self.component_name,
                 self.channel_start_options)
        try:
            channel.start_services(self.channel_start_options)
        except Exception:
            channel.remove_channel_listener(self)
            channel.remove_membership_listener(self)
            raise
        local = channel.get_local_member(False)
        log.info("%s: channel started, local member %s", self.component_name, getattr(local, "name", local))
        pipeline = getattr(self.container, "pipeline", None)
        if pipeline is not None:
            for valve in self.valves:
                if valve not in pipeline.valves:
                    pipeline.add_valve(valve)
        if self.deployer is not None:
            # a listener only now: with none configured, _check_defaults added the session listener
            self.add_cluster_listener(self.deployer)
            self.deployer.start()
        if not self.trusted:
            log.info("%s: the channel has no AuthInterceptor or EncryptInterceptor: session attribute values "
                     "replicate only if they are plain (str, int, float, bool, None, bytes, list, dict, tuple, "
                     "set, datetime, Decimal, UUID)", self.component_name)

    def _stop(self):
        if self.deployer is not None:
            try:
                self.deployer.stop()
            except Exception:
                log.exception("%s: stopping the deployer failed", self.component_name)
            if self.deployer in self.cluster_listeners:
                self.cluster_listeners.remove(self.deployer)
        pipeline = getattr(self.container, "pipeline", None)
        if pipeline is not None:
            for valve in self.valves:
                if valve in pipeline.valves:
                    pipeline.remove_valve(valve)
        channel = self.channel
        if channel is None:
            return
        try:
            channel.stop_services(self.channel_start_options)
        except Exception:
            log.exception("%s: stopping the channel failed", self.component_name)
        finally:
            channel.remove_channel_listener(self)
            channel.remove_membership_listener(self)

    def background_process(self):
        if self.heartbeat_background_enabled and self.channel is not None:
            self.channel.heartbeat()
        if self.deployer is not None and self.state.available:
            try:
                self.deployer.background_process()
            except Exception:
                log.exception("%s: the deployer's background step failed", self.component_name)
        self.fire_lifecycle_event(PERIODIC_EVENT)

    # -- membership (the channel calls these) ---------------------------------------------------
    def member_added(self, member):
        log.info("Replication member added:[%r]", member)
        self.fire_lifecycle_event(BEFORE_MEMBER_REGISTER, member)
        self.fire_lifecycle_event(AFTER_MEMBER_REGISTER, member)

    def member_disappeared(self, member):
        log.info("Received member disappeared:[%r]", member)
        self.fire_lifecycle_event(BEFORE_MEMBER_UNREGISTER, member)
        self.fire_lifecycle_event(AFTER_MEMBER_UNREGISTER, member)
        log.info("Replication member removed:[%r]", member)

    def get_members(self):
        return list(self.channel.get_members()) if self.channel is not None else []

    def has_members(self):
        return self.channel is not None and self.channel.has_members()

    def get_local_member(self):
        return self.channel.get_local_member(True) if self.channel is not None else None

    # -- sending ------------------------------------------------------------------------------
    def send(self, message, dest=None, options=None):
        """Send a ClusterMessage to dest (a Member) or to every member. Returns the channel's
        message id, or None when nothing was sent (no members, or a failure, which is logged)."""
        if not isinstance(message, ClusterMessage):
            raise TypeError("SimpleTcpCluster.send needs a ClusterMessage, not %s" % type(message).__name__)
        options = self.channel_send_options if options is None else ch.parse_send_options(options)
        # the member object, not a fresh record with its alive time (that costs an encode per send)
        local = self.channel.get_local_member(False) if self.channel is not None else None
        message.address = local
        if dest is not None:
            if dest == local:
                log.error("%s: refusing to send %r to the local member", self.component_name, message)
                return None
            members = [dest]
        else:
            members = self.get_members()
            if not members:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s: no members, %r not sent", self.component_name, message)
                return None
        try:
            return self.channel.send(members, message.to_wire(), options)
        except (ChannelError, OSError) as exc:
            # one line per failing member per 10 s: a dead member fails every request's send
            # until membership drops it
            faulty = getattr(exc, "faulty", None) or {}
            key = ",".join(sorted(getattr(m, "name", str(m)) for m in faulty)) or "?"
            self._send_failures.log(logging.ERROR, key, "%s: unable to send %r: %s", self.component_name,
                                    message, exc)
            if self.notify_lifecycle_listener_on_failure:
                self.fire_lifecycle_event(SEND_MESSAGE_FAILURE, SendMessageData(message, dest, exc))
            return None

    # -- receiving (the channel calls these) ----------------------------------------------------
    def accept(self, msg, sender):
        return ClusterMessage.is_envelope(msg)

    def message_received(self, msg, sender):
        try:
            message = ClusterMessage.from_wire(msg)
        except ValueError as exc:
            log.warning("%s: dropping a malformed cluster message from %s: %s", self.component_name,
                        getattr(sender, "name", sender), exc)
            return
        message.address = sender
        accepted = False
        errors = []
        for listener in list(self.cluster_listeners):
            if listener.accept(message):
                accepted = True
                try:
                    listener.message_received(message)
                except Exception as exc:  # the other listeners still get the message
                    errors.append((listener, exc))
        if not accepted:
            log.debug("%s: no cluster listener took %r", self.component_name, message)
            if self.notify_lifecycle_listener_on_failure:
                self.fire_lifecycle_event(RECEIVE_MESSAGE_FAILURE, SendMessageData(message, sender, None))
        if errors:
            for listener, exc in errors[1:]:
                log.error("%s: cluster listener %r failed on %r", self.component_name, listener, message,
                          exc_info=exc)
            # the channel logs the first and turns it into FAIL_ACK for a sync-ack sender
            raise errors[0][1]
