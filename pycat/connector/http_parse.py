"""HTTP/1.1 request parsing rules, pure (no sockets, no gevent): what the connector's handler
(pycat/connector/handler.py) checks a request line, header block and Host against, strict as
Tomcat 10. Each refusal raises InvalidRequest (or HeaderTooLarge / RequestLineTooLong), which the
handler answers with 400 (431, 414) and logs; the patterns run once per line or block, not per
character."""
import re


class InvalidRequest(ValueError):
    """A request the connector answers with 400 (the message says why, for the log)."""


# method SP request-target SP HTTP-version CRLF. Tomcat tolerates runs of SP/HTAB between the
# parts and a bare LF at the end; nothing else (str.split() would also split on \x0b, \x1c...).
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]+([^\x00-\x20\x7f]+)[ \t]+(HTTP/1\.[01])\r?\n")
# in the header block: control characters other than HTAB, and CR that does not end a line
_CTL_AND_CR = bytes(range(0x20)).translate(None, b"\t\n") + b"\x7f"
_BAD_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")     # to name the culprit
# a whole "name: value" header line (the block is free of CR but line ends, see above)
_HEADER_LINE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([^\r\n]*)\r?$", re.M)
# Tomcat's Host parser: a name of alphanumeric labels (inner hyphens) joined by single dots,
# an optional final dot (IPv4 literals fit the same pattern), or an [IPv6] literal; then an
# optional :port. Empty is allowed (RFC 9112 3.2). Linear: labels are separated by the dots.
# Unlike Tomcat, "_" is a label character: Docker/Compose service names (my_service) use it,
# and it delimits nothing, so refusing it only breaks those deployments.
_HOST = re.compile(r"(?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
                   r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?)(?::[0-9]{0,5})?)?")
_MAX_CONTENT_LENGTH = 2 ** 63 - 1      # Tomcat's long: a larger Content-Length is a 400
_GOOD_HOSTS = set()                     # Host values that passed _HOST (bounded, see read_request)


class HeaderTooLarge(ValueError):
    pass


class RequestLineTooLong(ValueError):
    pass


class Headers:
    """Parsed request headers: enough of http.client.HTTPMessage for pywsgi."""

    __slots__ = ("pairs", "_index")
    status = ""

    def __init__(self, pairs):
        self.pairs = pairs                    # [(name, value)] in order
        index = {}
        for name, value in pairs:
            key = name.lower()
            if key in index:
                index[key] = index[key] + (", " if key != "cookie" else "; ") + value
            else:
                index[key] = value
        self._index = index

    def get(self, name, default=None):
        return self._index.get(name.lower(), default)

    getheader = get

    def __contains__(self, name):
        return name.lower() in self._index

    def __delitem__(self, name):
        key = name.lower()
        self._index.pop(key, None)
        self.pairs = [p for p in self.pairs if p[0].lower() != key]

    @property
    def typeheader(self):
        return self._index.get("content-type")

    @property
    def headers(self):
        return ["%s: %s\r\n" % p for p in self.pairs]

    def items(self):
        return list(self.pairs)


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_header_lines(lines):
    """[b'Name: value\\r\\n', ...] → [(name, value)]; obs-fold continuation joined.

    A bad name, a control character (other than HTAB) or a CR not ending the line → ValueError."""
    block = b"".join(lines)
    # every deleted byte must be the CR of a CRLF: else a control character or a bare CR is there
    # (two C-level passes; a regex with a look-ahead costs several times more)
    if len(block) - len(block.translate(None, _CTL_AND_CR)) != block.count(b"\r\n"):
        bad = _BAD_HEADER_BYTES.search(block)
        raise InvalidRequest("control character %r in the request headers"
                                    % (bad.group() if bad is not None else block[:0]))
    pairs = _HEADER_LINE.findall(block.decode("latin-1"))
    if len(pairs) == len(lines):
        # one "name:value" match per line: nothing folded, nothing malformed (the usual request)
        return [(name, value.strip(" \t")) for name, value in pairs]
    return _parse_header_lines_slowly(lines)


def _parse_header_lines_slowly(lines):
    """Line by line: obs-fold continuations, and the exact reason of a malformed line."""
    pairs = []
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if line[:1] in (" ", "\t"):
            if not pairs:
                raise InvalidRequest("header continuation without a header")
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not _TOKEN_CHARS.issuperset(name):
            raise InvalidRequest("invalid header line %r" % line[:100])
        pairs.append((name, value.strip(" \t")))
    return pairs


def _parse_content_length(text):
    """Content-Length → int; anything but digits up to 2**63-1 (Tomcat's long) → 400."""
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest("Invalid Content-Length: %r" % (text[:100],))
    if len(text) > 18:
        digits = text.lstrip("0")
        if len(digits) > 19 or int(digits or "0") > _MAX_CONTENT_LENGTH:
            raise InvalidRequest("Content-Length above %d: %r" % (_MAX_CONTENT_LENGTH, text[:100]))
    return int(text)
