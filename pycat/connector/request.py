"""Request: the servlet-side view of one HTTP request, over the WSGI environ.

Cheap to create (the hot path builds one per request): headers, cookies, parameters, server
name/port and local address are computed on first use. Valves may rewrite the client view
(``remote_addr``, ``remote_host``, ``scheme``, ``secure``, ``server_port``: RemoteIpValve) and
override single headers (``set_header_override``) for everything downstream.
"""
import logging
from urllib.parse import parse_qsl

from pycat.core import session_support
from pycat.core.session_accessor import SessionAccessor
from pycat.errors import BadRequest  # noqa: F401 (defined in layer 1 for core and webapp; re-exported)

log = logging.getLogger(__name__)

_ENV_KEYS = {}


def _env_key(name):
    key = _ENV_KEYS.get(name)
    if key is None:
        upper = name.upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        if len(_ENV_KEYS) < 1000:
            _ENV_KEYS[name] = key
    return key


def _wsgi_str(text):
    """PEP 3333 'native string': the UTF-8 bytes of a decoded path, as latin-1 text."""
    return text if text.isascii() else text.encode("utf-8").decode("latin-1")


def parse_cookie_header(value):
    cookies = {}
    if not value:
        return cookies
    for item in value.split(";"):
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        cookies.setdefault(name, val)
    return cookies


class Request:
    # One Request is built per request, so its constructor stores only what every request needs.
    # What most requests never set has a class-level default instead (read through the instance
    # as usual; a write lands in the instance's __dict__): the constructor does not pay for it.
    __slots__ = (
        "environ", "connector", "method", "protocol", "request_uri", "query_string", "decoded_uri",
        "host", "context", "wrapper", "context_path", "servlet_path", "path_info", "match_type",
        "mapping_redirect", "remote_addr", "remote_host", "scheme", "secure", "start_time",
        "attributes", "remote_user", "session_state", "_response", "__dict__", "__weakref__",
    )
    path_parameters = None
    dispatcher_type = "REQUEST"
    session_if_exists = None
    requested_session_id = None
    _server_name = None
    _server_port = None
    _cookies = None
    _params = None
    _header_overrides = None
    _body = None
    _local_addr = None

    def __init__(self, environ, connector=None, start_time=0.0, scheme=None, secure=False, mapping=None):
        self.environ = environ
        self.connector = connector
        self.method = environ["REQUEST_METHOD"]
        self.protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        self.request_uri = self.decoded_uri = environ.get("pycat.raw_path") or environ.get("PATH_INFO", "/")
        self.query_string = environ.get("QUERY_STRING", "")
        if mapping is None:
            self.host = self.context = self.wrapper = None
            self.context_path = self.servlet_path = ""
            self.path_info = self.match_type = self.mapping_redirect = None
        else:
            # apply_mapping() inlined: the Adapter maps before it builds the Request
            self.host = mapping.host
            self.context = mapping.context
            self.wrapper = mapping.wrapper
            self.context_path = mapping.context_path
            self.servlet_path = mapping.servlet_path
            self.path_info = mapping.path_info
            self.match_type = mapping.match_type
            self.mapping_redirect = mapping.redirect
        # remote_host: the address until someone resolves it (enableLookups) or a proxy protocol
        # forwards a name (AJP's Adapter sets it from the environ's REMOTE_HOST)
        self.remote_addr = self.remote_host = environ.get("REMOTE_ADDR", "")
        if scheme is not None:
            self.scheme = scheme
            self.secure = secure
        elif connector is not None:
            self.scheme = connector.scheme
            self.secure = connector.secure
        else:
            self.scheme = environ.get("wsgi.url_scheme", "http")
            self.secure = self.scheme == "https"
        self.start_time = start_time
        self.attributes = {}
        self.remote_user = None
        self.session_state = None
        self._response = None      # set by session_support.begin: a session made later sends its cookie

    @property
    def peer_addr(self):
        """The TCP peer's address, whatever a RemoteIpValve made of remote_addr (with AJP: the
        web server's address, forwarded separately)."""
        environ = self.environ
        return environ.get("pycat.peer_addr") or environ.get("REMOTE_ADDR", "")

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.request_uri)

    # -- mapping -----------------------------------------------------------------------------
    def apply_mapping(self, mapping):
        self.host = mapping.host
        self.context = mapping.context
        self.wrapper = mapping.wrapper
        self.context_path = mapping.context_path
        self.servlet_path = mapping.servlet_path
        self.path_info = mapping.path_info
        self.match_type = mapping.match_type
        self.mapping_redirect = mapping.redirect

    @property
    def path(self):
        """The decoded path inside the context (servlet_path + path_info)."""
        return self.servlet_path + (self.path_info or "")

    # -- headers --------------------------------------------------------------------------
    def get_header(self, name, default=None):
        overrides = self._header_overrides
        if overrides is not None:
            key = name.lower()
            if key in overrides:
                value = overrides[key]
                return default if value is None else value
        return self.environ.get(_env_key(name), default)

    def set_header_override(self, name, value):
        """Downstream valves and apps see ``value`` for this header (None removes it)."""
        if self._header_overrides is None:
            self._header_overrides = {}
        self._header_overrides[name.lower()] = value

    @property
    def headers(self):
        """{lower-case name: value} of every request header."""
        out = {}
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                out[key[5:].replace("_", "-").lower()] = value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                out[key.replace("_", "-").lower()] = value
        if self._header_overrides:
            for name, value in self._header_overrides.items():
                if value is None:
                    out.pop(name, None)
                else:
                    out[name] = value
        return out

    @property
    def content_type(self):
        return self.environ.get("CONTENT_TYPE") or None

    @property
    def content_length(self):
        value = self.environ.get("CONTENT_LENGTH")
        return int(value) if value and value.isdigit() else -1

    @property
    def character_encoding(self):
        ctype = self.environ.get("CONTENT_TYPE") or ""
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        ctx = self.context
        return (getattr(ctx, "request_character_encoding", None) if ctx is not None else None) or "utf-8"

    @property
    def cookies(self):
        if self._cookies is None:
            self._cookies = parse_cookie_header(self.get_header("cookie"))
        return self._cookies

    def get_cookie(self, name, default=None):
        return self.cookies.get(name, default)

    # -- server / client view -------------------------------------------------------------
    @property
    def server_name(self):
        if self._server_name is None:
            host = self.get_header("host")
            if host:
                if host.startswith("["):
                    self._server_name = host[:host.find("]") + 1]
                else:
                    self._server_name = host.rsplit(":", 1)[0] if ":" in host else host
            else:
                self._server_name = self.environ.get("SERVER_NAME", "localhost")
        return self._server_name

    @server_name.setter
    def server_name(self, value):
        self._server_name = value

    @property
    def server_port(self):
        if self._server_port is None:
            host = self.get_header("host") or ""
            colon = host.rfind(":")
            if colon > host.rfind("]") and host[colon + 1:].isdigit():
                self._server_port = int(host[colon + 1:])
            elif host:
                self._server_port = 443 if self.scheme == "https" else 80
            else:
                self._server_port = self.local_port
        return self._server_port

    @server_port.setter
    def server_port(self, value):
        self._server_port = value

    @property
    def is_secure(self):
        """The servlet API's isSecure(): TLS to the client (forwarded by AJP from httpd's mod_ssl)."""
        return self.secure

    @property
    def remote_port(self):
        port = self.environ.get("REMOTE_PORT")
        return int(port) if port else -1

    @property
    def local_port(self):
        connector = self.connector
        if connector is not None and connector.bound_port:
            return connector.bound_port
        return int(self.environ.get("SERVER_PORT") or 0)

    @property
    def local_addr(self):
        if self._local_addr is None:
            forwarded = self.environ.get("pycat.local_addr")     # AJP's AJP_LOCAL_ADDR
            if forwarded:
                self._local_addr = forwarded
                return forwarded
            handler = self.environ.get("pycat.handler")
            try:
                self._local_addr = handler.socket.getsockname()[0]
            except Exception:
                self._local_addr = self.environ.get("SERVER_NAME", "")
        return self._local_addr

    @property
    def request_url(self):
        port = self.server_port
        default = 443 if self.scheme == "https" else 80
        return "%s://%s%s%s" % (self.scheme, self.server_name, "" if port == default else ":%d" % port,
                                self.request_uri)

    # -- attributes -----------------------------------------------------------------------
    def get_attribute(self, name, default=None):
        return self.attributes.get(name, default)

    def set_attribute(self, name, value):
        if value is None:
            self.attributes.pop(name, None)
        else:
            self.attributes[name] = value

    def remove_attribute(self, name):
        self.attributes.pop(name, None)

    # -- body and parameters --------------------------------------------------------------
    @property
    def input(self):
        return self.environ["wsgi.input"]

    def read_body(self, limit=None):
        """The whole request body (cached). Bodies over ``limit`` bytes raise ValueError."""
        if self._body is None:
            length = self.content_length
            if limit is not None and limit >= 0 and length > limit:
                raise ValueError("request body of %d bytes exceeds %d" % (length, limit))
            stream = self.environ.get("wsgi.input")
            if stream is None:
                self._body = b""
            elif limit is not None and limit >= 0:
                data = stream.read(limit + 1)
                if len(data) > limit:
                    raise ValueError("request body exceeds %d bytes" % limit)
                self._body = data
            else:
                self._body = stream.read()
        return self._body

    @property
    def parameters(self):
        """{name: [values]} from the query string and a urlencoded form body (lazy)."""
        if self._params is None:
            self._params = self._parse_parameters()
        return self._params

    def _parse_parameters(self):
        params = {}
        max_count = getattr(self.connector, "max_parameter_count", -1)
        budget = [max_count if max_count is not None and max_count >= 0 else None]

        def add(pairs):
            for k, v in pairs:
                if budget[0] is not None:
                    if budget[0] == 0:
                        log.info("Parameters of %s beyond maxParameterCount (%d) ignored",
                                 self.request_uri, max_count)
                        self.attributes["pycat.parameters.parse_failed"] = "maxParameterCount"
                        return False
                    budget[0] -= 1
                params.setdefault(k, []).append(v)
            return True

        encoding = self.character_encoding
        uri_encoding = getattr(self.connector, "uri_encoding", None) or "utf-8"
        if self.query_string:
            if not add(parse_qsl(self.query_string, keep_blank_values=True, encoding=uri_encoding,
                                 errors="replace")):
                return params
        ctype = (self.content_type or "").split(";")[0].strip().lower()
        if self.method == "POST" and ctype == "application/x-www-form-urlencoded":
            limit = getattr(self.connector, "max_post_size", 2097152)
            try:
                body = self.read_body(limit if limit is not None and limit >= 0 else None)
            except ValueError:
                log.info("Parameters of %s not parsed: body larger than maxPostSize (%s)",
                         self.request_uri, limit)
                self.attributes["pycat.parameters.parse_failed"] = "maxPostSize"
                return params
            except BadRequest as exc:
                # as Tomcat's parseParameters: the form parameters are just missing (the connection
                # closes after this response); read_body() itself raises, for servlets that care
                log.info("Parameters of %s not parsed: %s", self.request_uri, exc)
                self.attributes["pycat.parameters.parse_failed"] = "badBody"
                return params
            add(parse_qsl(body.decode(encoding, "replace"), keep_blank_values=True,
                          encoding=encoding, errors="replace"))
        elif self.method in ("POST", "PUT") and ctype == "multipart/form-data":
            # the text fields of a multipart form are parameters too; files are in self.parts
            try:
                parts = self.parts
            except BadRequest as exc:
                log.info("Parameters of %s not parsed: %s", self.request_uri, exc)
                self.attributes["pycat.parameters.parse_failed"] = "badBody"
                return params
            add((p.name, p.text(encoding)) for p in parts if p.filename is None and p.name is not None)
        return params

    def get_parameter(self, name, default=None):
        values = self.parameters.get(name)
        return values[0] if values else default

    def get_parameter_values(self, name):
        return list(self.parameters.get(name, ()))

    # -- WSGI ------------------------------------------------------------------------------
    def wsgi_environ(self):
        """A fresh environ for a WSGI app mounted at this request's servlet (see servlet.py)."""
        env = dict(self.environ)
        env.pop("pycat.handler", None)
        if self.match_type in ("exact", "path"):
            script = self.context_path + self.servlet_path
            path_info = self.path_info or ""
        else:
            script = self.context_path
            path_info = self.servlet_path + (self.path_info or "")
        env["SCRIPT_NAME"] = _wsgi_str(script)
        env["PATH_INFO"] = _wsgi_str(path_info)
        env["QUERY_STRING"] = self.query_string     # a forward may have replaced it
        env["REMOTE_ADDR"] = self.remote_addr
        env["wsgi.url_scheme"] = self.scheme
        env["SERVER_NAME"] = self.server_name
        env["SERVER_PORT"] = str(self.server_port)
        if self._header_overrides:
            for name, value in self._header_overrides.items():
                key = _env_key(name)
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
        env["pycat.request"] = self
        env["pycat.session"] = SessionAccessor(self)   # lazy: creates nothing by itself
        return env

    # -- sessions (the logic lives in pycat.core.session_support) ---------------------------
    def get_session(self, create=True):
        """The session of this request; with ``create`` a new one if there is none (or it expired)."""
        return session_support.get_session(self, create)

    @property
    def session(self):
        return session_support.get_session(self, True)

    def change_session_id(self):
        """New id for the current session (at login, against session fixation); returns it."""
        return session_support.change_session_id(self)

    @property
    def is_requested_session_id_valid(self):
        return session_support.is_requested_session_id_valid(self)

    @property
    def is_requested_session_id_from_cookie(self):
        return session_support.requested_session_id_from_cookie(self)

    # -- servlet API: parts, dispatchers, the authenticated user (logic in pycat.webapp/realm) --
    @property
    def parts(self):
        """The parts of a multipart/form-data body (pycat.webapp.multipart.Part), [] otherwise."""
        from pycat.webapp.multipart import request_parts
        return request_parts(self)

    def get_part(self, name):
        for part in self.parts:
            if part.name == name:
                return part
        return None

    def get_request_dispatcher(self, path):
        """A RequestDispatcher for ``path``; relative paths are resolved against this request's."""
        if self.context is None:
            return None
        if not path.startswith("/"):
            current = self.servlet_path + (self.path_info or "")
            path = current[:current.rfind("/") + 1] + path
        return self.context.get_request_dispatcher(path)

    @property
    def user_principal(self):
        return self.attributes.get("pycat.auth.principal")

    @property
    def auth_type(self):
        return self.attributes.get("pycat.auth.type")

    def is_user_in_role(self, role):
        principal = self.attributes.get("pycat.auth.principal")
        if principal is None:
            return False
        realm = getattr(principal, "realm", None)
        return realm.has_role(principal, role) if realm is not None else role in principal.roles
