"""AJP/1.3 packets, pure: bytes in, values out, and values in, bytes out. No sockets, no gevent.

The theory of the format (Apache JServ Protocol 1.3, as httpd's mod_jk / mod_proxy_ajp and Tomcat's
AjpProcessor speak it):

* **Framing.** Everything travels in packets: a 4-byte head, then a payload. From the web server
  (httpd) to the container (us) the head is the magic ``0x12 0x34`` and a 2-byte big-endian payload
  length; from the container to the web server it is ``"AB"`` (``0x41 0x42``) and the length. A
  packet is never larger than the connector's ``packetSize`` (8192 bytes by default, head
  included; at most 65536): httpd's ``max_packet_size`` / ``ProxyIOBufferSize`` must agree with it.
* **Data types.** byte; boolean (one byte, 0 or 1); integer (2 bytes, big-endian, unsigned);
  string (an integer length, that many bytes, then a NUL byte not counted in the length; the length
  ``0xFFFF`` means "null" and is followed by nothing).
* **One request**, server to container, starts with a FORWARD_REQUEST packet (type byte 2):
  method (byte code; 0xFF means "given as the stored_method attribute"), protocol, request URI
  (without the query), remote address, remote host, server name (strings), server port (integer),
  is_ssl (boolean), a header count (integer) and the headers. A header name is either a 2-byte code
  ``0xA0nn`` for the fourteen common request headers (``accept`` ... ``user-agent``) or a string;
  every value is a string. Then attributes, each a code byte and a value, up to the ARE_DONE byte
  0xFF: remote_user (3), auth_type (4), query_string (5), route (6), ssl_cert (7), ssl_cipher (8),
  ssl_session (9), req_attribute (10: a name string and a value string), ssl_key_size (11: an
  integer), secret (12), stored_method (13); context (1) and servlet_path (2) are strings nobody
  uses. The secret attribute is what makes a connector safe to expose (CVE-2020-1938, "Ghostcat":
  without it anyone reaching the port could set arbitrary request attributes).
* **The body**, server to container, travels in packets without a type byte: an integer length and
  that many bytes. When the request declares a Content-Length above 0 the server sends the first
  body packet unasked, right after the FORWARD_REQUEST; every further packet is an answer to the
  container's GET_BODY_CHUNK (type 6, with the integer number of bytes wanted). A packet with no
  data (payload empty, or length 0) means the body is over.
* **The response**, container to server: SEND_HEADERS (type 4: status integer, reason string,
  header count integer, then headers named by a 2-byte code ``0xA0nn`` for the eleven common
  response headers or by a string, each with a string value), SEND_BODY_CHUNK (type 3: an integer
  length, the bytes, a NUL byte), and END_RESPONSE (type 5: a boolean, 1 when the connection may
  carry another request).
* **Other messages from the server**: CPING (type 10), which the container answers with CPONG
  (type 9) on the same connection, between requests (httpd uses it to test a pooled connection);
  SHUTDOWN (7), which Tomcat and we refuse: a web server does not stop the container; PING (8),
  an AJP/1.4 leftover nobody sends, refused as unknown.

What this module gives: ``PacketDecoder`` cuts a byte stream into payloads incrementally (feed it
whatever recv() returned; bytes cut anywhere are kept until the packet is complete, and its
buffer never holds more than one packet plus one read); ``parse_forward_request`` turns a
FORWARD_REQUEST payload into a ``ForwardRequest``; ``parse_body_chunk``, ``refusal`` (the
secret and the attribute policy, Tomcat's rules) and the encoders of the container's packets.
Anything malformed raises ``AjpError``: the caller closes the connection and logs, nothing is
resynchronised (a stream that lost its framing cannot be trusted).
"""
import hmac
import struct

MAGIC_IN = b"\x12\x34"        # web server → container
MAGIC_OUT = b"AB"             # container → web server
HEAD_SIZE = 4
DEFAULT_PACKET_SIZE = 8192
MAX_PACKET_SIZE = 65536       # Tomcat's ceiling for packetSize

# message types
FORWARD_REQUEST = 2
SHUTDOWN = 7
PING = 8
CPING = 10
SEND_BODY_CHUNK = 3
SEND_HEADERS = 4
END_RESPONSE = 5
GET_BODY_CHUNK = 6
CPONG = 9

NULL_LENGTH = 0xFFFF

METHODS = ("OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PROPFIND", "PROPPATCH", "MKCOL",
           "COPY", "MOVE", "LOCK", "UNLOCK", "ACL", "REPORT", "VERSION-CONTROL", "CHECKIN", "CHECKOUT",
           "UNCHECKOUT", "SEARCH", "MKWORKSPACE", "UPDATE", "LABEL", "MERGE", "BASELINE-CONTROL",
           "MKACTIVITY")                          # code 1 is OPTIONS
METHOD_CODES = {name: i + 1 for i, name in enumerate(METHODS)}
STORED_METHOD = 0xFF

REQUEST_HEADERS = ("accept", "accept-charset", "accept-encoding", "accept-language", "authorization",
                   "connection", "content-type", "content-length", "cookie", "cookie2", "host", "pragma",
                   "referer", "user-agent")       # 0xA001 is accept
REQUEST_HEADER_CODES = {name: 0xA001 + i for i, name in enumerate(REQUEST_HEADERS)}
RESPONSE_HEADERS = ("Content-Type", "Content-Language", "Content-Length", "Date", "Last-Modified",
                    "Location", "Set-Cookie", "Set-Cookie2", "Servlet-Engine", "Status", "WWW-Authenticate")
RESPONSE_HEADER_CODES = {name.lower(): 0xA001 + i for i, name in enumerate(RESPONSE_HEADERS)}

# attribute codes
A_CONTEXT, A_SERVLET_PATH, A_REMOTE_USER, A_AUTH_TYPE, A_QUERY_STRING, A_ROUTE = 1, 2, 3, 4, 5, 6
A_SSL_CERT, A_SSL_CIPHER, A_SSL_SESSION, A_REQ_ATTRIBUTE, A_SSL_KEY_SIZE = 7, 8, 9, 10, 11
A_SECRET, A_STORED_METHOD, A_ARE_DONE = 12, 13, 0xFF
_STRING_ATTRIBUTES = {A_CONTEXT: "context", A_SERVLET_PATH: "servlet_path", A_REMOTE_USER: "remote_user",
                      A_AUTH_TYPE: "auth_type", A_QUERY_STRING: "query_string", A_ROUTE: "route",
                      A_SSL_CERT: "ssl_cert", A_SSL_CIPHER: "ssl_cipher", A_SSL_SESSION: "ssl_session",
                      A_SECRET: "secret", A_STORED_METHOD: "stored_method"}

# req_attribute names the protocol itself defines (mod_jk / mod_proxy_ajp send them), always
# accepted; any other name must match allowedRequestAttributesPattern (Tomcat's rule)
AJP_LOCAL_ADDR = "AJP_LOCAL_ADDR"
AJP_REMOTE_PORT = "AJP_REMOTE_PORT"
AJP_SSL_PROTOCOL = "AJP_SSL_PROTOCOL"
KNOWN_REQUEST_ATTRIBUTES = frozenset((
    AJP_LOCAL_ADDR, AJP_REMOTE_PORT, AJP_SSL_PROTOCOL, "JK_LB_ACTIVATION",
    "javax.servlet.request.cipher_suite", "javax.servlet.request.key_size",
    "javax.servlet.request.ssl_session", "javax.servlet.request.X509Certificate",
    "jakarta.servlet.request.secure_protocol", "jakarta.servlet.request.cipher_suite",
    "jakarta.servlet.request.key_size", "jakarta.servlet.request.ssl_session",
    "jakarta.servlet.request.X509Certificate",
    # IIS's TLS variables (isapi_redirect)
    "CERT_ISSUER", "CERT_SUBJECT", "CERT_COOKIE", "HTTPS_SERVER_SUBJECT", "CERT_FLAGS",
    "HTTPS_SECRETKEYSIZE", "CERT_SERIALNUMBER", "HTTPS_SERVER_ISSUER", "HTTPS_KEYSIZE"))

_U16 = struct.Struct(">H")
_HEAD = struct.Struct(">2sH")


class AjpError(ValueError):
    """A malformed packet: the connection is closed (the message says why, for the log)."""


def max_payload(packet_size):
    return packet_size - HEAD_SIZE


def check_packet_size(packet_size):
    """packetSize is ours to set, never the peer's; Tomcat accepts 8192..65536."""
    if not DEFAULT_PACKET_SIZE <= packet_size <= MAX_PACKET_SIZE:
        raise ValueError("packetSize must be between %d and %d, not %d"
                         % (DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, packet_size))
    return packet_size


# -- framing ----------------------------------------------------------------------------------------
class PacketDecoder:
    """Cuts the web server's byte stream into packet payloads.

    ``feed(data)`` returns the payloads completed by ``data`` (possibly none) and keeps the rest. A
    head with the wrong magic, or announcing more than ``packet_size`` bytes, raises AjpError at
    once, before any of that packet is buffered: a stranger cannot make us hold more than one
    packet."""

    __slots__ = ("limit", "magic", "_buf", "_need")

    def __init__(self, packet_size=DEFAULT_PACKET_SIZE, magic=MAGIC_IN):
        self.limit = max_payload(packet_size)
        self.magic = magic
        self._buf = bytearray()
        self._need = None      # payload length of the packet in progress, once its head is read

    @property
    def pending(self):
        """Bytes held that do not make a whole packet yet."""
        return len(self._buf)

    def feed(self, data):
        buf = self._buf
        buf += data
        out = []
        while True:
            need = self._need
            if need is None:
                if len(buf) < HEAD_SIZE:
                    break
                magic, need = _HEAD.unpack_from(buf)
                if magic != self.magic:
                    buf.clear()        # the stream is dead: keep nothing of it
                    raise AjpError("wrong magic %r (expected %r)" % (bytes(magic), self.magic))
                if need > self.limit:
                    buf.clear()
                    raise AjpError("packet of %d bytes announced, more than packetSize %d allows"
                                   % (need, self.limit + HEAD_SIZE))
                del buf[:HEAD_SIZE]
                self._need = need
            if len(buf) < need:
                break
            out.append(bytes(buf[:need]))
            del buf[:need]
            self._need = None
        return out


# -- reading payloads -------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def byte(self):
        pos = self.pos
        if pos >= len(self.data):
            raise AjpError("packet ends inside a byte field at offset %d" % pos)
        self.pos = pos + 1
        return self.data[pos]

    def int(self):
        pos = self.pos
        if pos + 2 > len(self.data):
            raise AjpError("packet ends inside an integer field at offset %d" % pos)
        self.pos = pos + 2
        return _U16.unpack_from(self.data, pos)[0]

    def peek_int(self):
        if self.pos + 2 > len(self.data):
            raise AjpError("packet ends inside an integer field at offset %d" % self.pos)
        return _U16.unpack_from(self.data, self.pos)[0]

    def string(self):
        """latin-1 text (bytes kept one for one, as the HTTP connector keeps them), or None."""
        length = self.int()
        if length == NULL_LENGTH:
            return None
        pos = self.pos
        end = pos + length
        if end + 1 > len(self.data):
            raise AjpError("string of %d bytes runs past the end of the packet" % length)
        if self.data[end] != 0:
            raise AjpError("string at offset %d is not NUL-terminated" % (pos - 2))
        self.pos = end + 1
        return self.data[pos:end].decode("latin-1")

    def text(self, what):
        value = self.string()
        if value is None:
            raise AjpError("%s is null" % what)
        return value


class ForwardRequest:
    """The fields of one FORWARD_REQUEST. ``attributes`` holds the coded attributes by name
    (``remote_user``, ``query_string``, ``route``, ``ssl_cert``, ``ssl_key_size``, ``secret``...),
    ``request_attributes`` the req_attribute pairs in order."""

    __slots__ = ("method", "protocol", "uri", "remote_addr", "remote_host", "server_name", "server_port",
                 "is_ssl", "headers", "attributes", "request_attributes")

    def __init__(self):
        self.headers = []
        self.attributes = {}
        self.request_attributes = []

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def content_length(self):
        """The declared Content-Length (-1: none, so the body, if any, is asked for packet by packet)."""
        value = self.header("content-length")
        if value is None:
            return -1
        value = value.strip()
        if not value.isdigit() or len(value) > 18:
            raise AjpError("invalid Content-Length %r" % value[:40])
        return int(value)

    def __repr__(self):
        return "<ForwardRequest %s %s>" % (self.method, self.uri)


def message_type(payload):
    """The type byte of a packet that starts a request (or None for an empty packet)."""
    return payload[0] if payload else None


def parse_forward_request(payload, max_headers=-1):
    """A FORWARD_REQUEST payload (type byte included) → ForwardRequest; AjpError if malformed.

    The whole packet must be consumed exactly: trailing bytes mean the sender and we disagree on
    the format, and the rest of the stream cannot be trusted either."""
    r = _Reader(payload)
    if r.byte() != FORWARD_REQUEST:
        raise AjpError("not a FORWARD_REQUEST")
    req = ForwardRequest()
    code = r.byte()
    if code == STORED_METHOD:
        req.method = None                        # the stored_method attribute gives it
    elif 1 <= code <= len(METHODS):
        req.method = METHODS[code - 1]
    else:
        raise AjpError("unknown method code %d" % code)
    req.protocol = r.text("protocol")
    req.uri = r.text("request URI")
    req.remote_addr = r.string() or ""
    req.remote_host = r.string()
    req.server_name = r.string() or ""
    req.server_port = r.int()
    req.is_ssl = r.byte() != 0
    count = r.int()
    if 0 <= max_headers < count:
        raise AjpError("%d request headers, more than maxHeaderCount (%d)" % (count, max_headers))
    headers = req.headers
    for _ in range(count):
        if r.peek_int() & 0xFF00 == 0xA000:
            code = r.int() - 0xA001
            if not 0 <= code < len(REQUEST_HEADERS):
                raise AjpError("unknown request header code 0x%04X" % (code + 0xA001))
            name = REQUEST_HEADERS[code]
        else:
            name = r.text("header name")
        value = r.string()
        headers.append((name, "" if value is None else value))
    attributes = req.attributes
    while True:
        code = r.byte()
        if code == A_ARE_DONE:
            break
        if code == A_REQ_ATTRIBUTE:
            name = r.text("request attribute name")
            req.request_attributes.append((name, r.string() or ""))
        elif code == A_SSL_KEY_SIZE:
            attributes["ssl_key_size"] = r.int()
        elif code in _STRING_ATTRIBUTES:
            attributes[_STRING_ATTRIBUTES[code]] = r.string()
        else:
            # Tomcat skips an unknown code and reads on, but the value's length is unknown, so
            # what follows would be guessed: refuse the packet instead
            raise AjpError("unknown attribute code %d" % code)
    if r.pos != len(payload):
        raise AjpError("%d bytes after the end of the request attributes" % (len(payload) - r.pos))
    if req.method is None:
        stored = attributes.get("stored_method")
        if not stored:
            raise AjpError("method code 0xFF without a stored_method attribute")
        req.method = stored
    return req


def parse_body_chunk(payload):
    """A body packet's data; b"" means the body is over."""
    if not payload:
        return b""
    r = _Reader(payload)
    length = r.int()
    if length + 2 > len(payload):
        raise AjpError("body chunk of %d bytes announced in a packet of %d" % (length, len(payload)))
    return payload[2:2 + length]


def refusal(req, secret, secret_required, attribute_pattern):
    """Why ``req`` must be answered with 403 (Tomcat's rules), or None.

    * With a secret configured, the request must carry it, equal (a missing one is refused too);
    * with ``secret_required`` and no secret configured nothing is served (the connector refuses
      to start in that case; this is the second lock);
    * a req_attribute that the protocol does not define must match ``attribute_pattern`` (a
      compiled regular expression matched whole, or None: refuse them all)."""
    if secret:
        given = req.attributes.get("secret")
        if given is None:
            return "no secret in the request"
        if not _same(given, secret):
            return "wrong secret"
    elif secret_required:
        return "secretRequired and no secret configured"
    for name, _ in req.request_attributes:
        if name in KNOWN_REQUEST_ATTRIBUTES:
            continue
        if attribute_pattern is None or attribute_pattern.fullmatch(name) is None:
            return "request attribute %r not allowed by allowedRequestAttributesPattern" % name[:100]
    return None


def _same(a, b):
    """Equality in time independent of where the strings differ."""
    return hmac.compare_digest(a.encode("latin-1", "replace"), b.encode("latin-1", "replace"))


# -- writing packets --------------------------------------------------------------------------------
def _packet(payload):
    return _HEAD.pack(MAGIC_OUT, len(payload)) + payload


def _string(text):
    data = text.encode("latin-1") if text.__class__ is str else text
    if len(data) >= NULL_LENGTH:
        raise ValueError("string of %d bytes is too long for AJP" % len(data))
    return _U16.pack(len(data)) + data + b"\x00"


def _check_field(text):
    # httpd turns these into HTTP header lines: CR, LF or NUL would split or cut them
    if "\r" in text or "\n" in text or "\x00" in text:
        raise ValueError("CR, LF or NUL in a response header: %r" % text[:100])


def send_headers(status, reason, headers, packet_size=DEFAULT_PACKET_SIZE):
    """SEND_HEADERS for ``status`` with ``headers`` [(name, value)] (text; latin-1). ValueError for a
    header a client must not receive (CR/LF/NUL, not latin-1) or a block larger than a packet."""
    parts = [bytes((SEND_HEADERS,)), _U16.pack(status)]
    reason = reason or str(status)      # mod_jk fails on an empty reason (Tomcat bug 45026)
    _check_field(reason)
    parts.append(_string(reason))
    parts.append(_U16.pack(len(headers)))
    for name, value in headers:
        _check_field(name)
        _check_field(value)
        code = RESPONSE_HEADER_CODES.get(name.lower())
        parts.append(_U16.pack(code) if code is not None else _string(name))
        parts.append(_string(value))
    payload = b"".join(parts)
    if len(payload) > max_payload(packet_size):
        raise ValueError("response headers of %d bytes do not fit in packetSize %d" % (len(payload), packet_size))
    return _packet(payload)


def body_chunks(data, packet_size=DEFAULT_PACKET_SIZE):
    """SEND_BODY_CHUNK packets carrying ``data`` (as many as packetSize makes necessary)."""
    step = packet_size - 8             # head 4, type 1, length 2, NUL 1 (Tomcat's SEND_HEAD_LEN)
    out = []
    view = memoryview(data)
    for start in range(0, len(data), step):
        piece = view[start:start + step]
        out.append(_packet(b"".join((b"\x03", _U16.pack(len(piece)), piece, b"\x00"))))
    return b"".join(out)


def end_response(reuse=True):
    return END_AND_REUSE if reuse else END_AND_CLOSE


def get_body_chunk(packet_size=DEFAULT_PACKET_SIZE):
    """GET_BODY_CHUNK asking for as much as one body packet of ``packet_size`` can carry."""
    return _packet(bytes((GET_BODY_CHUNK,)) + _U16.pack(packet_size - 6))


END_AND_REUSE = _packet(b"\x05\x01")
END_AND_CLOSE = _packet(b"\x05\x00")
CPONG_PACKET = _packet(bytes((CPONG,)))


# -- writing the web server's side (tests, benchmarks, fuzzers) ------------------------------------
def _in_packet(payload):
    return _HEAD.pack(MAGIC_IN, len(payload)) + payload


def forward_request(method="GET", uri="/", protocol="HTTP/1.1", remote_addr="127.0.0.1", remote_host=None,
                    server_name="localhost", server_port=80, is_ssl=False, headers=(), attributes=(),
                    request_attributes=()):
    """A FORWARD_REQUEST packet as httpd would send it (headers coded where the protocol codes
    them; ``attributes`` [(name, value)] by the names ``parse_forward_request`` gives)."""
    codes = {v: k for k, v in _STRING_ATTRIBUTES.items()}
    code = METHOD_CODES.get(method)
    parts = [bytes((FORWARD_REQUEST, code if code is not None else STORED_METHOD)), _string(protocol),
             _string(uri), _string(remote_addr),
             _U16.pack(NULL_LENGTH) if remote_host is None else _string(remote_host),
             _string(server_name), _U16.pack(server_port), bytes((1 if is_ssl else 0,)), _U16.pack(len(headers))]
    for name, value in headers:
        hcode = REQUEST_HEADER_CODES.get(name.lower())
        parts.append(_U16.pack(hcode) if hcode is not None else _string(name))
        parts.append(_string(value))
    attributes = list(attributes)
    if code is None:
        attributes.append(("stored_method", method))
    for name, value in attributes:
        if name == "ssl_key_size":
            parts.append(bytes((A_SSL_KEY_SIZE,)) + _U16.pack(value))
        else:
            parts.append(bytes((codes[name],)) + _string(value))
    for name, value in request_attributes:
        parts.append(bytes((A_REQ_ATTRIBUTE,)) + _string(name) + _string(value))
    parts.append(bytes((A_ARE_DONE,)))
    return _in_packet(b"".join(parts))


def body_packet(data):
    """A body packet from the web server (b"" makes the empty end-of-body packet)."""
    return _in_packet(_U16.pack(len(data)) + data if data else b"")


CPING_PACKET = _in_packet(bytes((CPING,)))
SHUTDOWN_PACKET = _in_packet(bytes((SHUTDOWN,)))


def parse_container_packet(payload):
    """Decode one container → server payload (tests read our answers with it):
    ("headers", status, reason, [(name, value)]), ("body", bytes), ("end", reuse), ("get", n), ("cpong",)."""
    r = _Reader(payload)
    kind = r.byte()
    if kind == SEND_HEADERS:
        status = r.int()
        reason = r.string()
        headers = []
        for _ in range(r.int()):
            if r.peek_int() & 0xFF00 == 0xA000:
                name = RESPONSE_HEADERS[r.int() - 0xA001]
            else:
                name = r.text("header name")
            headers.append((name, r.string()))
        return ("headers", status, reason, headers)
    if kind == SEND_BODY_CHUNK:
        length = r.int()
        return ("body", bytes(payload[3:3 + length]))
    if kind == END_RESPONSE:
        return ("end", r.byte() == 1)
    if kind == GET_BODY_CHUNK:
        return ("get", r.int())
    if kind == CPONG:
        return ("cpong",)
    raise AjpError("unknown container packet type %d" % kind)


def container_decoder(packet_size=DEFAULT_PACKET_SIZE):
    """A PacketDecoder for the container's direction ("AB" magic): what httpd reads (tests)."""
    return PacketDecoder(packet_size, MAGIC_OUT)
