"""The request side of sessions: the Context's Manager, session lookup, cookies and URL rewriting.

Tomcat spreads this over StandardContext, Request.doGetSession and Response.encodeURL; here it is
one module, called through small hooks:

* ``start_manager(context)`` (Context start): a ``<Manager>`` from server.xml/context.xml, else
  ``create_manager(context)``: the cluster's clone of its ``<Manager>`` template for a
  distributable Context under a ``<Cluster>`` (Tomcat's ClusterManager contract, see
  ``create_manager``), else a StandardManager. The manager gets the context, name, work dir (CATALINA_BASE/work/<Engine>/<Host>/<app>),
  the Engine's jvmRoute, ``distributable`` and the timeout (web.xml session-timeout minutes x 60;
  a ``maxInactiveInterval`` set explicitly on the <Manager> wins), then the web.xml ``<listener>``
  classes that have session listener methods are registered and the manager started.
* ``begin(request, response)`` / ``end(request, response)`` wrap the servlet call in the Context
  valve. ``begin`` only notes the requested ids (cookie values named per session-config
  cookie-config name / Context sessionCookieName, then the ``;jsessionid=`` path parameter);
  nothing is looked up until the app asks, so a request that never touches the session pays
  almost nothing. ``end`` calls ``end_access()`` on every session the request used
  (PersistentManager with maxIdleBackup=0 writes the store there) and turns a refused session
  (maxActiveSessions) into **503** with the manager's message: the server is out of a resource,
  the client may retry; Tomcat's IllegalStateException would be a less useful 500.
* ``get_session(request, create)``: the first requested id naming a live session wins (every
  candidate cookie is tried in order, as Tomcat does); forged, malformed, unknown or expired ids
  just mean "no session" and, with ``create``, a fresh one with a new id (never the requested one).
  A new session's Set-Cookie (Path = context path or "/", HttpOnly unless useHttpOnly="false",
  Secure on https or cookie-config secure, SameSite from <CookieProcessor sameSiteCookies>,
  Max-Age from cookie-config max-age) is a *container header* of the response, so it survives a
  WSGI app's start_response.
* WSGI apps get ``environ["pycat.session"]``: a ``SessionAccessor`` (pycat.core.session_accessor), the session as a lazy dict.
  Reading it creates nothing (no session reads as empty), writing creates the session;
  ``accessor.session()`` is the Session or None, ``accessor.create()`` creates one, and ``exists``,
  ``id``, ``invalidate()``, ``change_id()`` complete it. The framework adapters (pycat.adapters)
  build on it.
"""
import contextvars
import logging
import os

from pycat import reflect
from pycat.errors import EXCEPTION_ATTR, IllegalStateError
from pycat.session import cookies
from pycat.session.errors import NotSerializableError, TooManyActiveSessions
from pycat.session.events import LISTENER_METHODS
from pycat.session.manager import StandardManager
from pycat.webapp.war import ContextName

log = logging.getLogger(__name__)

# the request the current greenlet serves: a context variable, which (with gevent) is per greenlet
# as a gevent.local is, at a third of the cost to set (two sets per request)
_CURRENT_REQUEST = contextvars.ContextVar("pycat_current_request", default=None)


# -- the Context's manager --------------------------------------------------------------------
def work_dir_for(context):
    """The Context's workDir, else Tomcat's default work/<Engine>/<Host>/<base name>, where the
    base name carries the ## version (ROOT, a#b, app##2): parallel versions of one path must not
    share a work folder (one SESSIONS.ser each)."""
    if context.work_dir:
        return context.work_dir if os.path.isabs(context.work_dir) \
            else os.path.join(context.catalina_base, context.work_dir)
    host = context.parent
    engine = getattr(host, "parent", None)
    base_name = ContextName(context.path or "", getattr(context, "webapp_version", "") or "").base_name
    return os.path.join(context.catalina_base, "work", getattr(engine, "name", None) or "Catalina",
                        getattr(host, "name", None) or "localhost", base_name)


def cluster_of(context):
    """The Cluster a distributable Context replicates through (the nearest ``<Cluster>`` up the
    Host and Engine), else None. Core knows the cluster only as an object with Tomcat's
    ClusterManager-facing methods: ``create_manager(context)``,
    ``register_manager(manager, context)``."""
    if not context.distributable:
        return None
    getter = getattr(context, "get_cluster", None)
    cluster = getter() if callable(getter) else None
    if cluster is None or not callable(getattr(cluster, "create_manager", None)):
        return None
    return cluster


def create_manager(context):
    """The manager of a Context that configured none (Tomcat's StandardContext.startInternal):
    a distributable Context under a Cluster asks the cluster, which clones its <Manager>
    template and registers the clone under the app's name (it unregisters when the manager
    stops); any other Context gets a StandardManager."""
    cluster = cluster_of(context)
    if cluster is not None:
        return cluster.create_manager(context)
    return StandardManager()


def start_manager(context):
    """Create (if needed), configure and start the Context's manager; register web.xml listeners."""
    manager = context.manager
    if manager is None:
        manager = create_manager(context)
        context.set_manager(manager)
    else:
        cluster = cluster_of(context)
        if cluster is not None:
            # a Context's own <Manager> wins over the template; the cluster still learns of it
            cluster.register_manager(manager, context)
    manager.context = context
    if not manager.name:
        manager.name = context.name or "/"
    manager.work_dir = work_dir_for(context)
    engine = context.get_engine()
    manager.jvm_route = getattr(engine, "jvm_route", None) or None
    manager.distributable = bool(context.distributable)
    if "max_inactive_interval" not in manager.__dict__:
        minutes = context.session_timeout
        manager.max_inactive_interval = minutes * 60 if minutes and minutes > 0 else -1
    context.__dict__["_session_config"] = None
    _register_listeners(context, manager)
    manager.start()


def _register_listeners(context, manager):
    for old in context.__dict__.pop("_session_listeners", ()):
        manager.remove_session_listener(old)
    added = []
    shared = getattr(getattr(context, "webapp_listeners", None), "instances", None)
    if shared is not None:
        # pycat.webapp.listeners already made one instance per <listener>: the same object
        # hears context, request and session events, as in Tomcat
        for listener in shared:
            if any(callable(getattr(listener, m, None)) for m in LISTENER_METHODS) \
                    and manager.add_session_listener(listener):
                added.append(listener)
        context.__dict__["_session_listeners"] = added
        return
    web = context.web_xml
    for name in (getattr(web, "listeners", None) or ()):
        if not name:
            continue
        try:
            cls = context.loader.load(name) if context.loader is not None else reflect.load_class(name)
        except Exception:
            log.exception("Context [%s]: listener class %s could not be loaded", context.path or "/", name)
            continue
        if not any(callable(getattr(cls, m, None)) for m in LISTENER_METHODS):
            continue  # a servlet-context or request listener: not the session manager's business
        try:
            listener = cls() if isinstance(cls, type) else cls
        except Exception:
            log.exception("Context [%s]: listener %s could not be created", context.path or "/", name)
            continue
        if manager.add_session_listener(listener):
            added.append(listener)
    context.__dict__["_session_listeners"] = added


def background_process(context):
    manager = context.manager
    if manager is not None and manager.state.available:
        try:
            manager.background_process()
        except Exception:
            log.exception("Context [%s]: session manager background processing failed", context.path or "/")


# -- per-context cookie settings --------------------------------------------------------------
class CookieConfig:
    __slots__ = ("name", "param", "path", "domain", "http_only", "secure", "same_site", "max_age",
                 "use_cookies")

    def __init__(self, context):
        web = getattr(context.web_xml, "session_cookie", None) or {}
        # Tomcat's SessionConfig: the Context's sessionCookieName (when set) over cookie-config name
        explicit = context.__dict__.get("session_cookie_name")
        self.name = explicit or web.get("name") or context.session_cookie_name or cookies.DEFAULT_COOKIE_NAME
        self.param = cookies.uri_param_name(self.name)
        self.path = context.session_cookie_path or web.get("path") or \
            cookies.session_cookie_path(context.path, context.session_cookie_path_uses_trailing_slash)
        self.domain = context.session_cookie_domain or web.get("domain") or None
        http_only = web.get("http-only")
        self.http_only = context.use_http_only if not http_only else http_only.lower() == "true"
        self.secure = (web.get("secure") or "").lower() == "true"
        max_age = web.get("max-age")
        self.max_age = int(max_age) if max_age and max_age.lstrip("-").isdigit() else None
        self.same_site = cookies.normalize_same_site(_same_site_setting(context))
        self.use_cookies = bool(context.cookies)


def _same_site_setting(context):
    processor = getattr(context, "cookie_processor", None)
    if processor is not None:
        for key in ("sameSiteCookies", "same_site_cookies"):
            value = processor.get(key) if hasattr(processor, "get") else getattr(processor, key, None)
            if value:
                return value
    return getattr(context, "same_site_cookies", None)


def config_for(context):
    cfg = context.__dict__.get("_session_config")
    if cfg is None:
        cfg = context.__dict__["_session_config"] = CookieConfig(context)
    return cfg


# -- per request ---------------------------------------------------------------------------------
class SessionState:
    __slots__ = ("response", "config", "candidates", "from_cookie", "looked_up", "used", "ended")

    def __init__(self, response, config):
        self.response = response
        self.config = config
        self.candidates = ()      # [(id, from_cookie)] in the order they are tried
        self.from_cookie = False
        self.looked_up = False
        self.used = ()            # sessions access()-ed by this request (a list once there is one)
        self.ended = ()           # sessions whose access end() ended (for the ReplicationValve)


def begin(request, response):
    _CURRENT_REQUEST.set(request)
    # a session made later (get_session) takes the response from here, for its Set-Cookie
    request._response = response
    if request.session_state is None and not request.path_parameters:
        header = request.environ.get("HTTP_COOKIE")
        if not header:
            # nothing requested (most requests): no state until the app asks for a session
            return
    context = request.context
    # config_for() inlined: this runs on every request with a cookie
    cfg = context.__dict__.get("_session_config") or config_for(context)
    state = request.session_state
    if state is not None and state.config is cfg and state.response is response and not state.looked_up:
        return    # an Engine/Host valve began already (JvmRouteBinderValve reads the requested ids early)
    state = SessionState(response, cfg)
    candidates = None
    if cfg.use_cookies:
        header = request.environ.get("HTTP_COOKIE")
        if header and cfg.name in header:
            candidates = [(sid, True) for sid in cookies.parse_cookie_ids(header, cfg.name)]
    params = request.path_parameters
    if params:
        sid = params.get(cfg.param)
        if sid:
            if candidates is None:
                candidates = []
            candidates.append((sid, False))
    if candidates:
        state.candidates = candidates
        request.requested_session_id = candidates[0][0]
        state.from_cookie = candidates[0][1]
    request.session_state = state


def end(request, response):
    _CURRENT_REQUEST.set(None)
    state = request.session_state
    if state is not None and state.used:
        for session in state.used:
            try:
                session.end_access()
            except Exception:
                log.exception("end_access of session %s failed", session.id)
        state.ended = list(state.ended) + state.used if state.ended else state.used
        state.used = ()
    attributes = request.attributes
    exc = attributes.get(EXCEPTION_ATTR) if attributes else None
    if exc is not None and not response.committed:
        if isinstance(exc, TooManyActiveSessions):
            response.send_error(503, str(exc))
        elif isinstance(exc, NotSerializableError):
            response.send_error(500, str(exc))


def release(request):
    """The request has left the Host (the Engine valve calls this): it and its session state drop
    the response, breaking the request -> response -> request cycle. A session created after this
    point gets no Set-Cookie, as one created after the response was committed."""
    request._response = None
    state = request.session_state
    if state is not None:
        state.response = None


def used_sessions(request):
    """The sessions ``request`` used (accessed), whether or not its Context has ended their access:
    the ReplicationValve replicates each of them once the request is done."""
    state = request.session_state
    if state is None:
        return ()
    if not state.used:
        return state.ended
    return list(state.ended) + list(state.used)


def requested_ids(request, response):
    """The session ids ``request`` carries (cookies first, then the path parameter), read now by a
    valve that runs before the Context's (JvmRouteBinderValve); the Context keeps what is read."""
    if request.context is None:
        return []
    begin(request, response)
    state = request.session_state
    return [sid for sid, _from_cookie in state.candidates] if state is not None else []


def change_requested_id(request, old_id, new_id):
    """The session ``old_id`` that ``request`` asked for is now ``new_id`` (JvmRouteBinderValve moved
    it to this node): the request looks up the new id, and the response sets its cookie."""
    state = _state(request)
    if state is None:
        return
    state.candidates = [(new_id if sid == old_id else sid, from_cookie) for sid, from_cookie in state.candidates]
    if request.requested_session_id == old_id or request.requested_session_id is None:
        request.requested_session_id = new_id
    _send_cookie(request, state, new_id)


def current_request():
    """The request the current greenlet is serving (for adapters that are not handed one)."""
    return _CURRENT_REQUEST.get()


def _state(request):
    state = request.session_state
    if state is None and request.context is not None:
        state = request.session_state = SessionState(request._response, config_for(request.context))
    return state


def _use(state, session):
    session.access()
    if state.used:
        state.used.append(session)
    else:
        state.used = [session]     # most requests use no session: no list until one does
    return session


def get_session(request, create=True):
    session = request.session_if_exists
    if session is not None:
        if session.is_valid:
            return session
        request.session_if_exists = None
    context = request.context
    manager = getattr(context, "manager", None)
    if manager is None or not manager.state.available:
        return None
    state = _state(request)
    if not state.looked_up:
        state.looked_up = True
        for sid, from_cookie in state.candidates:
            found = manager.find_session(sid)
            if found is not None:
                request.requested_session_id = sid
                state.from_cookie = from_cookie
                request.session_if_exists = _use(state, found)
                return found
    if not create:
        return None
    response = state.response
    if state.config.use_cookies and response is not None and response.committed:
        raise IllegalStateError("Cannot create a session after the response has been committed")
    session = _use(state, manager.create_session())
    request.session_if_exists = session
    _send_cookie(request, state, session.id)
    return session


def _send_cookie(request, state, session_id):
    cfg = state.config
    response = state.response
    if not cfg.use_cookies or response is None or response.committed:
        return
    value = cookies.session_cookie_value(
        session_id, name=cfg.name, path=cfg.path, domain=cfg.domain, http_only=cfg.http_only,
        secure=cfg.secure or request.secure, same_site=cfg.same_site, max_age=cfg.max_age)
    prefix = cfg.name + "="
    # one session cookie per response (invalidate + create, or a changed id, replace it)
    response.headers = [h for h in response.headers
                        if not (h[0].lower() == "set-cookie" and h[1].startswith(prefix))]
    response.add_container_header("Set-Cookie", value)


def change_session_id(request, new_id=None):
    """Give the current session a new id (call at login, against session fixation)."""
    session = get_session(request, False)
    if session is None:
        raise IllegalStateError("change_session_id: the request has no session")
    new_id = session.manager.change_session_id(session, new_id)
    _send_cookie(request, _state(request), new_id)
    return new_id


def is_requested_session_id_valid(request):
    session = get_session(request, False)
    return session is not None and session.id == request.requested_session_id


def requested_session_id_from_cookie(request):
    state = request.session_state
    return bool(request.requested_session_id and state is not None and state.from_cookie)


def encode_url(request, url, redirect=False):
    """Response.encodeURL: ``;jsessionid=`` added only when the session id did not come from a
    cookie (cookies disabled, or a new session whose cookie the browser has not sent yet) and the
    URL stays inside this context on this server."""
    context = request.context if request is not None else None
    session = request.session_if_exists if request is not None else None
    if context is None or session is None:
        return url
    cfg = config_for(context)
    valid = session.is_valid
    if not cookies.is_encodeable(
            url, session_id=session.id, session_valid=valid,
            id_from_cookie=requested_session_id_from_cookie(request) and request.requested_session_id == session.id,
            scheme=request.scheme, server_name=request.server_name, server_port=request.server_port,
            context_path=request.context_path, request_path=request.decoded_uri, param=cfg.param):
        return url
    return cookies.encode_url(url, session.id, cfg.param)
