"""Security constraints and login (Tomcat's AuthenticatorBase, BasicAuthenticator, FormAuthenticator).

The Context runs ``Authenticator.check(request, response)`` before the servlet of every request
when its web.xml has security constraints or a login-config; False means the authenticator has
answered (401, 403, a redirect, the login page) and the servlet does not run.

1. Constraints for the request path and method, as Tomcat finds them: exact url-pattern, else
   the longest ``/prefix/*``, else ``*.ext``, else ``/``.
2. A user-data-constraint INTEGRAL/CONFIDENTIAL on plain http redirects to the Connector's
   ``redirectPort`` over https (403 when there is none).
3. An auth-constraint with no role-name denies everyone (403); else a matching constraint without
   auth-constraint leaves the resource open; else the user needs one of the roles named by the
   matching constraints: a name, ``*`` (any role declared in security-role; see
   RealmBase.all_roles_mode), ``**`` (any authenticated user).
4. The user: the principal kept in the session (FORM logins), else BASIC credentials from the
   Authorization header, checked by the Context's Realm (else the Host's, else the Engine's) on
   every request. BASIC without valid credentials: 401 with
   ``WWW-Authenticate: Basic realm="<realm-name>"``. When BASIC credentials authenticate a request
   that has a session not yet authenticated as that user, the session id changes (Tomcat's
   ``changeSessionIdOnAuthentication``, default true): an id planted before the login (session
   fixation) is worthless after it; the attributes stay. It changes once per user and session: the
   later requests of the same user keep the id. As in Tomcat, a session the app creates during
   the first authenticated request changes id at the next one. FORM: the request is saved in the
   session and the form-login-page is shown (forwarded, URL unchanged, as in Tomcat); the form POSTs
   ``j_username``/``j_password`` to ``j_security_check``; success changes the session id
   (fixation defence) and redirects (303) to the saved URI, where the saved request (a POST with
   its body, up to the Connector's maxSavePostSize) is replayed; failure shows the form-error-page.
5. An authenticated user without a required role: 403.

``Authenticator.change_session_id_on_authentication`` (default True) turns both id changes off;
pycat has no authenticator <Valve> to set it from a context.xml yet.
"""
import base64
import binascii
import logging

from pycat.realm.constraints import find_constraints

log = logging.getLogger(__name__)

PRINCIPAL_ATTR = "pycat.auth.principal"
AUTH_TYPE_ATTR = "pycat.auth.type"
PRINCIPAL_NOTE = "pycat.auth.principal"
SAVED_REQUEST_NOTE = "pycat.auth.saved_request"
#: the user name a BASIC login registered in the session (its id changed then; notes are not
#: persisted, so after a restart or failover the id changes once more, harmlessly)
BASIC_USER_NOTE = "pycat.auth.basic_user"


def parse_basic(header):
    """'Basic base64(user:password)' → (user, password) or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")     # RFC 7617's historical default
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Authenticator:
    #: Tomcat's AuthenticatorBase.changeSessionIdOnAuthentication: a login changes the session id
    change_session_id_on_authentication = True

    def __init__(self, context, constraints, login_config, security_roles):
        self.context = context
        self.constraints = list(constraints)
        self.login = login_config
        self.method = (login_config.auth_method if login_config is not None else None) or "BASIC"
        self.realm_name = login_config.realm_name if login_config is not None else None
        self.security_roles = set(security_roles)

    # -- the per-request step -----------------------------------------------------------
    def check(self, request, response):
        session = request.get_session(False) if self.method == "FORM" else None
        principal = session.get_note(PRINCIPAL_NOTE) if session is not None else None
        if principal is not None:
            self._bind(request, principal, self.method)
            self._restore(request, session)
        path = request.servlet_path + (request.path_info or "")
        if self.method == "FORM" and request.method == "POST" and path.endswith("/j_security_check"):
            self._form_login(request, response)
            return False
        constraints = find_constraints(self.constraints, path, request.method)
        if not constraints:
            return True
        if any(c.transport in ("INTEGRAL", "CONFIDENTIAL") for c in constraints) and not request.secure:
            return self._redirect_secure(request, response)
        # Servlet 13.8.1 as Tomcat applies it: an empty auth-constraint denies everyone, whatever
        # else matches; otherwise one matching constraint without auth-constraint opens the resource
        if any(c.roles is not None and len(c.roles) == 0 for c in constraints):
            response.send_error(403, "Access to the requested resource has been denied")
            return False
        if any(c.roles is None for c in constraints):
            return True
        needed = [c.roles for c in constraints]
        if principal is None and self.method != "FORM":
            principal = self._basic(request)
        if principal is None:
            if self.method == "FORM":
                self._show_login(request, response, session)
            else:
                # no realm-name: Tomcat names the realm after the server name and port
                name = self.realm_name or "%s:%s" % (request.server_name, request.server_port)
                response.set_header("WWW-Authenticate", 'Basic realm="%s"' % name.replace('"', ""))
                response.send_error(401)
            return False
        # a protected response must not be kept by shared caches (Tomcat's disableProxyCaching)
        response.set_header("Cache-Control", "private")
        roles = set()
        for r in needed:
            roles.update(r)
        if not self._has_any_role(principal, roles):
            response.send_error(403, "Access to the requested resource has been denied")
            return False
        return True

    # -- helpers -------------------------------------------------------------------------
    def _realm(self):
        return self.context.get_realm()

    def _authenticate(self, username, password):
        realm = self._realm()
        if realm is None:
            log.warning("Context [%s]: a login was attempted but no Realm is configured",
                        self.context.path or "/")
            return None
        return realm.authenticate(username, password)

    @staticmethod
    def _bind(request, principal, auth_type):
        request.remote_user = principal.name
        request.set_attribute(PRINCIPAL_ATTR, principal)
        request.set_attribute(AUTH_TYPE_ATTR, auth_type)

    def _basic(self, request):
        creds = parse_basic(request.get_header("authorization"))
        if creds is None:
            return None
        principal = self._authenticate(*creds)
        if principal is not None:
            self._bind(request, principal, "BASIC")
            self._register_basic(request, principal)
        return principal

    def _register_basic(self, request, principal):
        """Tomcat's AuthenticatorBase.register for BASIC: the request's session (one the client
        brought, perhaps planted by an attacker before the login) gets a new id the first time
        this user authenticates with it; the following requests of the same user keep it."""
        if not self.change_session_id_on_authentication:
            return
        session = request.get_session(False)
        if session is None or session.get_note(BASIC_USER_NOTE) == principal.name:
            return
        request.change_session_id()
        session.set_note(BASIC_USER_NOTE, principal.name)

    def _has_any_role(self, principal, roles):
        if "**" in roles:
            return True
        realm = self._realm()
        has = realm.has_role if realm is not None else (lambda p, r: r in p.roles)
        if "*" in roles:
            mode = getattr(realm, "all_roles_mode", "strict") if realm is not None else "strict"
            if mode == "authOnly" or (mode == "strictAuthOnly" and not self.security_roles):
                return True
            roles = (roles - {"*"}) | self.security_roles
        return any(has(principal, role) for role in roles)

    def _redirect_secure(self, request, response):
        port = getattr(request.connector, "redirect_port", 0) or 0
        if port <= 0:
            response.send_error(403, "A secure connection is required")
            return False
        host = request.server_name
        location = "https://%s%s%s" % (host, "" if port == 443 else ":%d" % port, request.request_uri)
        if request.query_string:
            location += "?" + request.query_string
        realm = self._realm()
        response.send_redirect(location, getattr(realm, "transport_guarantee_redirect_status", 302))
        return False

    # -- FORM --------------------------------------------------------------------------------
    @staticmethod
    def _uri(request):
        return request.request_uri + ("?" + request.query_string if request.query_string else "")

    def _show_login(self, request, response, session):
        saved = {"uri": self._uri(request), "method": request.method}
        if request.method == "POST":
            # the body comes back after the login (Tomcat's maxSavePostSize; 0: not kept)
            limit = getattr(request.connector, "max_save_post_size", 4096)
            if limit != 0:
                try:
                    saved["body"] = request.read_body(limit if limit > 0 else None)
                except ValueError:
                    response.send_error(403, "The request body is too large to be kept during the login")
                    return
                saved["content_type"] = request.content_type
        session = session or request.get_session(True)
        session.set_note(SAVED_REQUEST_NOTE, saved)
        response.set_header("Cache-Control", "no-store")
        self._forward(request, response, self.login.form_login_page)

    @staticmethod
    def _restore(request, session):
        """The first request after a FORM login to the saved URI becomes the saved request again."""
        saved = session.get_note(SAVED_REQUEST_NOTE)
        if not saved or not saved.get("restore") or saved["uri"] != Authenticator._uri(request):
            return
        session.remove_note(SAVED_REQUEST_NOTE)
        if "body" in saved:
            request.method = saved["method"]
            request._body = saved["body"]
            request._params = None
            environ = request.environ
            environ["REQUEST_METHOD"] = saved["method"]
            environ["CONTENT_LENGTH"] = str(len(saved["body"]))
            if saved.get("content_type"):
                environ["CONTENT_TYPE"] = saved["content_type"]

    def _forward(self, request, response, page):
        dispatcher = self.context.get_request_dispatcher(page)
        if dispatcher is None:
            response.send_error(500, "Login page %s not found" % page)
            return
        dispatcher.forward(request, response)

    def _form_login(self, request, response):
        session = request.get_session(False)
        saved = session.get_note(SAVED_REQUEST_NOTE) if session is not None else None
        username = request.get_parameter("j_username")
        password = request.get_parameter("j_password")
        principal = self._authenticate(username, password) if username is not None else None
        if principal is None:
            log.debug("FORM login failed for %s", username)
            self._forward(request, response, self.login.form_error_page or self.login.form_login_page)
            return
        if saved is None:
            # a login without a protected request first (bookmarked login page): Tomcat answers 400
            response.send_error(400, "Invalid direct reference to the form login page")
            return
        if self.change_session_id_on_authentication:
            request.change_session_id()
        session = request.get_session(False)
        saved["restore"] = True
        session.set_note(PRINCIPAL_NOTE, principal)
        self._bind(request, principal, "FORM")
        # as Tomcat: 303 tells an HTTP/1.1 client to GET the saved URI after this POST
        response.send_redirect(saved["uri"], 303 if request.protocol == "HTTP/1.1" else 302)

