"""Tomcat's CsrfPreventionFilter, as the manager application configures it (web.xml).

A page that changes state (/manager/html's forms, /manager/cluster's turnover form) must not be
drivable by another site the manager's user happens to visit: the browser would send the BASIC
credentials (and the session cookie) along with a forged POST. So every request to the servlets
this filter is mapped to must carry a nonce the server issued to the same session, as the
request parameter ``org.apache.catalina.filters.CSRF_NONCE``; without a valid one it gets 403 and
reaches nothing. Only the ``entryPoints`` (GET or HEAD) go through without one: /manager/html
(the list), /manager/cluster (the page) and its JSON.

Each request let through gets a fresh nonce (``secrets``, 128 bits), remembered in the user's
session among the last ``nonceCacheSize`` ones (5, Tomcat's default: a few tabs and the back
button keep working) and handed to the servlet as the request attribute of the same name, which
puts it into the URLs of its forms. Requests matching ``noNonceGenerationURLPatterns`` (the
polled JSON) neither create a session nor get one. A nonce is checked against the requesting
session only: one issued to another session is as good as none.

The nonce is taken from the query string (the forms' action URLs carry it), or from a urlencoded
form body; a multipart body is never read here (the upload streams it to disk later).
"""
import hmac
import logging
import secrets
from urllib.parse import parse_qsl

from pycat.webapp.filters import Filter

log = logging.getLogger("pycat.manager")

NONCE_NAME = "org.apache.catalina.filters.CSRF_NONCE"     # parameter, session and request attribute


def _patterns(text):
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _matches(pattern, path):
    if pattern.startswith("*."):
        return path.endswith(pattern[1:])
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        return path == prefix or path.startswith(prefix + "/")
    return path == pattern


def requested_nonce(request):
    """The nonce a request presents: from its query string, else from a urlencoded POST body."""
    for key, value in parse_qsl(request.query_string or "", keep_blank_values=True):
        if key == NONCE_NAME:
            return value
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if request.method == "POST" and ctype == "application/x-www-form-urlencoded":
        return request.get_parameter(NONCE_NAME)
    return None


def nonce_valid(session, given):
    """Whether ``given`` is one of the nonces ``session`` was issued (constant-time compares)."""
    if session is None or not given:
        return False
    cache = session.get_attribute(NONCE_NAME) or ()
    given = given.encode("utf-8", "replace")
    return any(hmac.compare_digest(n.encode("ascii"), given) for n in cache)


def remember(session, nonce, size):
    """Add ``nonce`` to the session's cache, dropping the oldest beyond ``size``."""
    cache = list(session.get_attribute(NONCE_NAME) or ())
    cache.append(nonce)
    session.set_attribute(NONCE_NAME, cache[-size:])


class CsrfPreventionFilter(Filter):

    def init(self, config):
        super().init(config)
        self.entry_points = set(_patterns(self.get_init_parameter("entryPoints", "")))
        self.no_generation = _patterns(self.get_init_parameter("noNonceGenerationURLPatterns", ""))
        try:
            self.cache_size = max(1, int(self.get_init_parameter("nonceCacheSize", 5)))
            self.deny_status = int(self.get_init_parameter("denyStatus", 403))
        except ValueError:
            self.cache_size, self.deny_status = 5, 403

    def do_filter(self, request, response, chain):
        path = (request.servlet_path or "") + (request.path_info or "")
        entry = request.method in ("GET", "HEAD") and path in self.entry_points
        if not entry and not nonce_valid(request.get_session(False), requested_nonce(request)):
            addr, peer = request.remote_addr, request.peer_addr
            source = addr if peer in (None, "", addr) else "%s (via %s)" % (addr, peer)
            log.warning("Manager: %s %s refused: no valid CSRF nonce (user [%s] from [%s])", request.method,
                        request.request_uri, request.remote_user, source)
            response.send_error(self.deny_status)
            return
        if not any(_matches(p, path) for p in self.no_generation):
            nonce = secrets.token_hex(16).upper()
            remember(request.get_session(True), nonce, self.cache_size)
            request.set_attribute(NONCE_NAME, nonce)
        chain.do_filter(request, response)
