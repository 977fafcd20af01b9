"""Response: status, headers, cookies and a body buffer, committed to pywsgi at the end.

The body is buffered until the request is done (then it leaves in one send with its
Content-Length) or until ``flush()`` commits the headers, after which writes stream (chunked
for HTTP/1.1 without a Content-Length). ``send_error`` marks the response as an error and
suspends it: later writes are dropped until an error page (Context <error-page> or the
ErrorReportValve) provides the body, as in Tomcat.
"""
import http
import logging
import socket
import time
from email.utils import formatdate

from pycat.errors import IllegalStateError  # noqa: F401 (defined in layer 1 for core and webapp; re-exported)

log = logging.getLogger(__name__)

_STATUS_LINES = {s.value: "%d %s" % (s.value, s.phrase) for s in http.HTTPStatus}
_NO_BODY = (204, 304)


def status_line(code, reason=None):
    if reason:
        return "%d %s" % (code, reason)
    line = _STATUS_LINES.get(code)
    return line if line is not None else "%d Unknown" % code


def header_block(headers):
    """The header lines ("Name: value\\r\\n" each) of ``headers``, a list of (name, value), if
    WSGI's start_response would take them as they are (str names and values, no CR or LF in
    them) and they name a Content-Length but no Connection or Date (pywsgi adds or reads
    those); else None. For PycatHandler.send_whole."""
    try:
        block = "".join([name + ": " + value + "\r\n" for name, value in headers])
    except TypeError:
        return None         # not a str: start_response raises, naming it
    n = len(headers)
    # each line holds exactly one CR and one LF, its end: else a name or value holds one
    if block.count("\n") != n or block.count("\r") != n:
        return None
    names = "\n" + block.lower()       # "\n<name>:" finds a header by its whole name
    if "\ncontent-length:" not in names or "\nconnection:" in names or "\ndate:" in names:
        return None
    return block


def _declared_length(headers):
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() else None
    return None


class ContainerHeader(tuple):
    """A header the container adds on its own behalf (the session cookie): it outlives a WSGI
    app's start_response, which otherwise replaces the header list."""
    __slots__ = ()


class Response:
    # Built once per request: the constructor stores what every request reads; the rest has a
    # class-level default (a write lands in the instance's __dict__), as in Request.
    __slots__ = ("request", "status", "headers", "_buffer", "_body_len", "_streamed", "committed",
                 "is_error", "suspended", "_suppress", "_start_response", "_handler", "_content_type",
                 "_charset", "_aborted", "__dict__")
    reason = None
    error_message = None
    error_reported = False
    status_set = False
    commit_time = None
    _write = None
    _declared = None     # the Content-Length the app declared, once committed
    _tail = None         # the bytes completing it, held until finish()

    def __init__(self, request=None, start_response=None, handler=None):
        """``handler``: the connection's PycatHandler when its ``send_whole`` may take the
        response (the HTTP connector's Adapter passes it); else everything goes through
        ``start_response``."""
        self.request = request
        self.status = 200
        self.headers = []
        self._buffer = []
        self._body_len = self._streamed = 0
        self.committed = self.is_error = self.suspended = self._suppress = self._aborted = False
        self._start_response = start_response
        self._handler = handler
        self._content_type = self._charset = None

    # -- status and headers -------------------------------------------------------------
    def set_status(self, code, reason=None):
        if self.committed:
            return
        self.status = code
        self.reason = reason
        self.status_set = True

    def set_header(self, name, value):
        if self.committed:
            return
        low = name.lower()
        if low == "content-type":
            self.content_type = value
            return
        self.headers = [h for h in self.headers if h[0].lower() != low]
        self.headers.append((name, str(value)))

    def add_container_header(self, name, value):
        if not self.committed:
            self.headers.append(ContainerHeader((name, str(value))))

    def encode_url(self, url):
        """``url`` with ``;jsessionid=`` when the session cannot travel in a cookie (see session_support)."""
        from pycat.core import session_support
        return session_support.encode_url(self.request, url)

    def encode_redirect_url(self, url):
        from pycat.core import session_support
        return session_support.encode_url(self.request, url, redirect=True)

    def add_header(self, name, value):
        if self.committed:
            return
        if name.lower() == "content-type":
            self.content_type = value
            return
        self.headers.append((name, str(value)))

    def get_header(self, name):
        low = name.lower()
        if low == "content-type":
            return self.content_type
        for key, value in self.headers:
            if key.lower() == low:
                return value
        if low == "content-length" and not self.committed and not self._suppress:
            return str(self._body_len)
        return None

    def get_headers(self, name):
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def contains_header(self, name):
        return self.get_header(name) is not None

    def remove_header(self, name):
        low = name.lower()
        self.headers = [h for h in self.headers if h[0].lower() != low]

    def set_date_header(self, name, timestamp):
        self.set_header(name, formatdate(timestamp, usegmt=True))

    @property
    def content_type(self):
        ctype = self._content_type
        if ctype is not None and self._charset and "charset" not in ctype:
            return "%s;charset=%s" % (ctype, self._charset)
        return ctype

    @content_type.setter
    def content_type(self, value):
        if self.committed:
            return
        self._content_type = value
        if value and "charset=" in value:
            self._charset = value.split("charset=", 1)[1].split(";")[0].strip().strip('"')

    @property
    def character_encoding(self):
        return self._charset or "utf-8"

    @character_encoding.setter
    def character_encoding(self, value):
        if self._content_type and "charset=" in self._content_type:
            self._content_type = self._content_type.split(";")[0]
        self._charset = value

    def set_content_length(self, length):
        self.set_header("Content-Length", str(int(length)))

    def set_cookie(self, name, value, max_age=None, path=None, domain=None, secure=False,
                   http_only=False, same_site=None, expires=None):
        parts = ["%s=%s" % (name, value)]
        if max_age is not None:
            parts.append("Max-Age=%d" % max_age)
            if max_age == 0 and expires is None:
                expires = 0
        if expires is not None:
            parts.append("Expires=%s" % formatdate(expires, usegmt=True))
        if domain:
            parts.append("Domain=" + domain)
        if path:
            parts.append("Path=" + path)
        if secure:
            parts.append("Secure")
        if http_only:
            parts.append("HttpOnly")
        if same_site:
            parts.append("SameSite=" + same_site)
        self.add_header("Set-Cookie", "; ".join(parts))

    # -- body ------------------------------------------------------------------------------
    def write(self, data):
        """Write text (encoded with the response charset, UTF-8 by default) or bytes."""
        if data.__class__ is str:
            if self._charset is None:
                context = self.request.context if self.request is not None else None
                self._charset = (context.response_character_encoding if context is not None else None) \
                    or "utf-8"
            data = data.encode(self._charset)
        if data and not (self.committed or self.suspended):
            # write_bytes' common case, inline (a servlet's every write comes here)
            self._buffer.append(data)
            self._body_len += len(data)
        else:
            self.write_bytes(data)

    def write_bytes(self, data):
        if self.suspended or not data:
            return
        if self.committed:
            if not self._suppress:
                declared = self._declared
                if declared is not None and self._streamed + len(data) >= declared:
                    self._hold(data)
                else:
                    self._write(data)
            self._streamed += len(data)
            return
        self._buffer.append(data)
        self._body_len += len(data)

    def writelines(self, chunks):
        for chunk in chunks:
            self.write(chunk)

    @property
    def content_written(self):
        return self._body_len > 0 or self._streamed > 0

    @property
    def bytes_sent(self):
        return 0 if self._suppress else self._body_len + self._streamed

    def suppress_body(self):
        """HEAD: produce headers (and Content-Length) as for GET but send no body."""
        self._suppress = True

    def reset_buffer(self):
        if self.committed:
            raise IllegalStateError("response already committed")
        self._buffer = []
        self._body_len = 0

    def reset(self):
        self.reset_buffer()
        self.status = 200
        self.reason = None
        self.headers = []
        self._content_type = None
        self._charset = None
        self.is_error = False
        self.error_message = None
        self.suspended = False

    # -- errors and redirects -----------------------------------------------------------
    def send_error(self, code, message=None):
        if self.committed:
            raise IllegalStateError("cannot send_error(%d): response already committed" % code)
        self.reset_buffer()
        self.status = code
        self.reason = None
        self.is_error = True
        self.error_message = message
        self.suspended = True

    def send_redirect(self, location, status=302):
        if self.committed:
            raise IllegalStateError("cannot redirect: response already committed")
        self.reset_buffer()
        request = self.request
        if "://" not in location and not location.startswith("/") and request is not None:
            base = request.request_uri
            location = base[:base.rfind("/") + 1] + location
        self.status = status
        self.reason = None
        self.set_header("Location", location)
        self.suspended = True

    def write_error_page(self, body, content_type):
        """For error renderers: replace the body of a suspended error response."""
        self.suspended = False
        self.reset_buffer()
        self.content_type = content_type
        self.remove_header("Content-Length")
        self.write_bytes(body)

    def prepare_error_dispatch(self):
        """Before an <error-page> dispatch: a clean body, writable, same status."""
        self.suspended = False
        self.reset_buffer()
        self.remove_header("Content-Length")

    # -- WSGI apps -------------------------------------------------------------------------
    def wsgi_start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.committed:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
            self.reset()
        code, _, reason = status.partition(" ")
        self.status = int(code)
        self.reason = reason or None
        if self.status_set:
            self.headers = [h for h in self.headers if h.__class__ is ContainerHeader]
        # else the first call: headers set before the app ran (valves, filters) stay
        self.status_set = True
        self._content_type = None
        for name, value in headers:
            if name.lower() == "content-type":
                self._content_type = value
                self._charset = None
            else:
                self.headers.append((name, value))
        return self.write_bytes

    # -- commit ----------------------------------------------------------------------------
    def _header_list(self, content_length):
        own = self.headers
        headers = list(own) if own else []
        ctype = self._content_type
        if ctype is not None:
            if self._charset and "charset" not in ctype and ctype.startswith("text/"):
                ctype = "%s;charset=%s" % (ctype, self._charset)
            headers.append(("Content-Type", ctype))
        if content_length is not None:
            for name, _ in own:
                if name.lower() == "content-length":
                    break
            else:
                headers.append(("Content-Length", content_length))
        return headers

    def flush(self):
        """Commit status and headers now; later writes stream to the client."""
        if self.committed:
            return
        self.commit_time = time.time()
        self.committed = True
        status = self.status
        head = self.request is not None and self.request.method == "HEAD"
        if head:
            self._suppress = True
        headers = self._header_list(None)
        self._write = self._start_response(status_line(status, self.reason), headers)
        self._declared = _declared_length(headers)
        buffered, self._buffer = self._buffer, []
        if buffered and not self._suppress and status not in _NO_BODY:
            data = b"".join(buffered)
            if self._declared is not None and len(data) >= self._declared:
                self._hold(data)
            else:
                self._write(data)
        self._streamed += self._body_len
        self._body_len = 0

    def _hold(self, data):
        """The bytes that complete a declared Content-Length wait for finish(): nothing can follow
        them, and they must leave after the pipeline (the ReplicationValve sends the request's
        session changes first), even when the app streamed its body (a WSGI iterator)."""
        if self._tail is None:
            self._tail = [data]
        else:
            self._tail.append(data)

    def finish(self):
        """The WSGI return value for pywsgi: the buffered body, or nothing once streamed."""
        if self._aborted:
            return []
        if self.committed:
            tail, self._tail = self._tail, None
            if tail:
                self._write(b"".join(tail))
            return []
        # no commit_time here: the only reader (the access log's %F) ran before finish()
        self.committed = True
        status = self.status
        body_len = self._body_len
        request = self.request
        head = request is not None and request.method == "HEAD"
        reason = self.reason
        line = _STATUS_LINES.get(status) if reason is None else None
        if line is None:
            line = status_line(status, reason)
        if status in _NO_BODY or status < 200:
            self._start_response(line, [h for h in self._header_list(None) if h[0].lower() != "content-length"])
            return []
        suppress = self._suppress
        length = None if (suppress and not body_len) else str(body_len)
        handler = self._handler
        if handler is not None and length is not None and \
                (reason is None or ("\r" not in line and "\n" not in line)):     # an app's reason phrase
            # The connection's handler sends the whole response itself (PycatHandler.send_whole),
            # skipping WSGI's start_response and its per-header work. The status and the header
            # lines are checked here as start_response checks them; anything odd goes its way.
            ctype = self._content_type
            if self.headers or ctype is None:
                block = header_block(self._header_list(length))
            else:
                # the common case (a content type and the length), without a list: the same text
                charset = self._charset
                if charset and "charset" not in ctype and ctype.startswith("text/"):
                    ctype = "%s;charset=%s" % (ctype, charset)
                block = "Content-Type: " + ctype + "\r\nContent-Length: " + length + "\r\n" \
                    if ctype.__class__ is str and "\r" not in ctype and "\n" not in ctype else None
            if block is not None:
                buffer = self._buffer
                body = None if (head or suppress or not body_len) else \
                    (buffer[0] if len(buffer) == 1 else b"".join(buffer))
                if handler.send_whole(line, status, block, body):
                    return []
        self._start_response(line, self._header_list(length))
        if head or suppress or not body_len:
            return []
        buffer = self._buffer
        return buffer if len(buffer) == 1 else [b"".join(buffer)]

    def abort(self):
        """Cut the connection (an error after the headers went out: the client must see a failure)."""
        self._aborted = True
        self.suspended = True
        handler = self.request.environ.get("pycat.handler") if self.request is not None else None
        if handler is not None:
            handler.close_connection = True
            try:
                handler.socket.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
