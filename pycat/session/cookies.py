"""Session tracking on the wire, as pure functions (no request objects, no sockets).

Cookie tracking (RFC 6265, Tomcat's Rfc6265CookieProcessor rules)::

    Set-Cookie: JSESSIONID=<id>; Max-Age=<n>; Expires=<date>; Path=<ctx>; Domain=<d>; Secure; HttpOnly; SameSite=Lax

``session_cookie_value`` builds that header value; ``Max-Age``/``Expires`` only when a max age
is configured (a session cookie otherwise lives until the browser closes). ``parse_cookie_ids``
returns every value of the session cookie in a ``Cookie`` header in order: a browser may send
several (one per matching path), and like Tomcat the caller tries each until one names a valid
session (``select_session_id``).

URL rewriting: the id rides as a path parameter, ``/app/page;jsessionid=<id>?q=1#top``.
The parameter name is the cookie name lower-cased (Tomcat's SessionConfig).
``strip_path_session_id`` takes it out of a request path, ``encode_url`` puts it into a URL the
app emits, and ``is_encodeable`` decides (Tomcat's Response.isEncodeable) whether it should.
"""
import email.utils
import re
import time
from urllib.parse import urljoin, urlsplit

DEFAULT_COOKIE_NAME = "JSESSIONID"
SAME_SITE_VALUES = {"unset": None, "none": "None", "lax": "Lax", "strict": "Strict"}

# RFC 6265 cookie-name = token; cookie-value octets (no CTLs, whitespace, DQUOTE, comma, semicolon, backslash)
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*\Z")
_ATTR_RE = re.compile(r"[^\x00-\x1f\x7f;]*\Z")


def uri_param_name(cookie_name=DEFAULT_COOKIE_NAME):
    """The path parameter name for URL rewriting: ``jsessionid`` for ``JSESSIONID``."""
    return (cookie_name or DEFAULT_COOKIE_NAME).lower()


def session_cookie_path(context_path, trailing_slash=False):
    """Cookie Path for a context: ``""`` (ROOT) -> ``/``; ``/app`` -> ``/app`` (or ``/app/``)."""
    path = context_path or ""
    if trailing_slash and not path.endswith("/"):
        path += "/"
    return path or "/"


def session_cookie_value(session_id, *, name=DEFAULT_COOKIE_NAME, path="/", domain=None,
                         http_only=True, secure=False, same_site=None, max_age=None,
                         partitioned=False, now=None):
    """The Set-Cookie header value of the session cookie. Raises ValueError for a bad name,
    value, path/domain or SameSite setting (configuration errors, caught at start-up)."""
    if not name or not _TOKEN_RE.match(name):
        raise ValueError("invalid cookie name %r" % (name,))
    if not _VALUE_RE.match(session_id):
        raise ValueError("invalid cookie value %r" % (session_id,))
    parts = ["%s=%s" % (name, session_id)]
    if max_age is not None and max_age >= 0:
        parts.append("Max-Age=%d" % max_age)
        # Expires for old clients, as Tomcat does; Max-Age=0 means delete: a date in the past
        expires = 0 if max_age == 0 else (time.time() if now is None else now) + max_age
        parts.append("Expires=%s" % email.utils.formatdate(expires, usegmt=True))
    if domain:
        _check_attr("Domain", domain)
        parts.append("Domain=%s" % domain)
    if path:
        _check_attr("Path", path)
        parts.append("Path=%s" % path)
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    same = normalize_same_site(same_site)
    if same:
        parts.append("SameSite=%s" % same)
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)


def normalize_same_site(value):
    """Tomcat's sameSiteCookies setting (unset/none/lax/strict, any case) -> attribute text."""
    if value is None or value == "":
        return None
    try:
        return SAME_SITE_VALUES[str(value).strip().lower()]
    except KeyError:
        raise ValueError("sameSiteCookies must be one of unset, none, lax, strict, not %r" % (value,)) from None


def _check_attr(what, value):
    if not _ATTR_RE.match(value):
        raise ValueError("invalid cookie %s %r" % (what, value))


def parse_cookie_ids(cookie_headers, name=DEFAULT_COOKIE_NAME):
    """Every value of cookie ``name`` in one or more Cookie header values, in order.
    Malformed pieces are skipped; never raises."""
    if cookie_headers is None:
        return []
    if isinstance(cookie_headers, (bytes, bytearray)):
        cookie_headers = cookie_headers.decode("latin-1")
    if isinstance(cookie_headers, str):
        cookie_headers = [cookie_headers]
    found = []
    for header in cookie_headers:
        if not isinstance(header, str):
            continue
        for piece in header.split(";"):
            key, sep, value = piece.partition("=")
            if not sep or key.strip() != name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                found.append(value)
    return found


def select_session_id(candidates, is_valid):
    """Tomcat's rule for several candidate ids: the first one ``is_valid(id)`` accepts wins.
    Returns (requested id, valid?): when none is valid the requested id is the last one tried
    (None when there were none)."""
    requested = None
    for candidate in candidates:
        requested = candidate
        if is_valid(candidate):
            return candidate, True
    return requested, False


def strip_path_session_id(path, param=uri_param_name()):
    """(path without ``;param=value``, the id or None) -- the last occurrence wins, as Tomcat's
    path-parameter map does. Other path parameters are left where they are."""
    if ";" not in path:
        return path, None
    found = None
    out = []
    for segment in path.split("/"):
        if ";" in segment:
            head, *params = segment.split(";")
            kept = []
            for p in params:
                key, sep, value = p.partition("=")
                if key == param and sep:
                    found = value
                else:
                    kept.append(p)
            segment = ";".join([head] + kept)
        out.append(segment)
    return "/".join(out), (found or None)


def encode_url(url, session_id, param=uri_param_name()):
    """``url`` with ``;param=id`` at the end of its path (before ``?query`` and ``#fragment``);
    an existing ``;param=...`` there is replaced."""
    if not url or session_id is None:
        return url
    rest = ""
    cut = len(url)
    for mark in ("?", "#"):
        i = url.find(mark)
        if 0 <= i < cut:
            cut = i
    path, rest = url[:cut], url[cut:]
    path, _ = strip_path_session_id(path, param)
    return "%s;%s=%s%s" % (path, param, session_id, rest)


def is_encodeable(url, *, session_id, session_valid, id_from_cookie, url_tracking=True,
                  scheme="http", server_name="localhost", server_port=80, context_path="",
                  request_path=None, param=uri_param_name()):
    """Whether the app's ``url`` should carry the session id (Tomcat's Response.isEncodeable):
    URL tracking is allowed, there is a valid session, the browser did not send it in a cookie,
    and the URL points into this same context on this same server (an absolute URL to another
    host must never leak the id). A relative URL is resolved against ``request_path`` if given."""
    if not url or url.startswith("#") or not session_id or not session_valid:
        return False
    if not url_tracking or id_from_cookie:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme or parts.netloc:
        if (parts.scheme or scheme).lower() != scheme.lower():
            return False
        if (parts.hostname or "").lower() != server_name.lower():
            return False
        default = 443 if scheme.lower() == "https" else 80
        if (port or default) != server_port:
            return False
        path = parts.path or "/"
    elif parts.path.startswith("/"):
        path = parts.path
    elif request_path:
        path = urlsplit(urljoin(request_path, url)).path
    else:
        return True  # relative to the current page: stays in the app
    if context_path and not (path == context_path or path.startswith(context_path + "/")
                             or path.startswith(context_path + ";")):
        return False
    _, current = strip_path_session_id(path, param)
    return current != session_id
