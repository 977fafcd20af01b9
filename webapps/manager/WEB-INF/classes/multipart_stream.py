"""A streaming multipart/form-data reader (RFC 7578) for the HTML manager's WAR upload.

Pure code: bytes in, events out, no I/O. The servlet reads the request body in chunks, feeds
them here and writes the WAR's bytes to a file as they come, so a 50 MiB upload never sits in
memory (the container's own parser, pycat.webapp.multipart, takes a whole body of at most
maxPostSize). What this object holds at any time is bounded: the bytes of an unfinished part
header block (``max_header_size``), or the few bytes at the end of a chunk that might be the
start of a delimiter.

Wire format, with ``B`` the boundary from the Content-Type::

    preamble CRLF? "--B" CRLF              (the preamble is skipped, at most max_header_size bytes)
    header lines CRLF CRLF                 (Content-Disposition: form-data; name="n"; filename="f")
    body bytes                             (never containing CRLF "--B")
    CRLF "--B" CRLF ... the next part, or CRLF "--B--" and the end (the epilogue is ignored)

``feed(data)`` returns a list of events, in order:

* ``("part", name, filename, headers)``: a part starts; ``filename`` is None for a plain field
  (the header had no filename parameter) and the client's raw text otherwise: the caller decides
  what a name may be (never trust it as a path); ``headers`` maps lower-case names to values;
* ``("data", bytes)``: the next bytes of the current part's body (never empty);
* ``("end",)``: the current part is complete.

``done`` turns true after the closing delimiter. ``finish()`` raises MultipartError when the
body ended before it (a truncated upload). Every malformed input raises MultipartError.
"""
from pycat.webapp.multipart import MultipartError, boundary_of, parse_header_params

__all__ = ["MultipartError", "MultipartReader", "boundary_of"]

_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)


class MultipartReader:

    def __init__(self, boundary, max_header_size=8192, max_parts=16):
        if isinstance(boundary, str):
            boundary = boundary.encode("latin-1")
        if not boundary or len(boundary) > 200 or b"\r" in boundary or b"\n" in boundary:
            raise MultipartError("unusable boundary %r" % boundary[:80])
        # a leading CRLF is fed in front of the body, so the first delimiter looks like the others
        self.delimiter = b"\r\n--" + boundary
        self.max_header_size = max_header_size
        self.max_parts = max_parts
        self.parts = 0
        self.state = _PREAMBLE
        self.buf = bytearray(b"\r\n")
        self.skipped = 0

    @property
    def done(self):
        return self.state == _DONE

    def feed(self, data):
        events = []
        if self.state == _DONE:
            return events        # the epilogue: ignored
        self.buf += data
        while True:
            state = self.state
            if state == _BODY:
                if not self._body(events):
                    break
            elif state == _HEADERS:
                if not self._headers(events):
                    break
            elif state == _AFTER_DELIMITER:
                if len(self.buf) < 2:
                    break
                mark = bytes(self.buf[:2])
                if mark == b"--":
                    self.state = _DONE
                    self.buf = bytearray()
                    break
                if mark != b"\r\n":
                    raise MultipartError("a delimiter is followed by %r, not CRLF or --" % mark)
                del self.buf[:2]
                self.state = _HEADERS
            elif state == _PREAMBLE:
                if not self._preamble():
                    break
            else:
                break
        return events

    def finish(self):
        """The body ended: MultipartError unless the closing delimiter was seen."""
        if self.state != _DONE:
            raise MultipartError("the body ended before the closing boundary (truncated upload?)")

    # -- states ----------------------------------------------------------------------------------
    def _preamble(self):
        at = self.buf.find(self.delimiter)
        if at < 0:
            # keep what could be the start of the delimiter; count the rest as preamble
            keep = len(self.delimiter) - 1
            drop = max(0, len(self.buf) - keep)
            self.skipped += drop
            del self.buf[:drop]
            if self.skipped > self.max_header_size:
                raise MultipartError("no opening boundary in the first %d bytes" % self.max_header_size)
            return False
        self.skipped += at
        if self.skipped > self.max_header_size:
            raise MultipartError("no opening boundary in the first %d bytes" % self.max_header_size)
        del self.buf[:at + len(self.delimiter)]
        self.state = _AFTER_DELIMITER
        return True

    def _headers(self, events):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > self.max_header_size:
                raise MultipartError("a part's headers are longer than %d bytes" % self.max_header_size)
            return False
        if end > self.max_header_size:
            raise MultipartError("a part's headers are longer than %d bytes" % self.max_header_size)
        block = bytes(self.buf[:end])
        del self.buf[:end + 4]
        self.parts += 1
        if self.parts > self.max_parts:
            raise MultipartError("more than %d parts" % self.max_parts)
        headers = parse_part_headers(block)
        kind, params = parse_header_params(headers.get("content-disposition"))
        if kind != "form-data" or "name" not in params:
            raise MultipartError("a part without 'Content-Disposition: form-data; name=...'")
        events.append(("part", params["name"], params.get("filename"), headers))
        self.state = _BODY
        return True

    def _body(self, events):
        buf = self.buf
        at = buf.find(self.delimiter)
        if at < 0:
            # everything but a possible delimiter start is the part's data
            safe = len(buf) - (len(self.delimiter) - 1)
            if safe > 0:
                events.append(("data", bytes(buf[:safe])))
                del buf[:safe]
            return False
        if at:
            events.append(("data", bytes(buf[:at])))
        del buf[:at + len(self.delimiter)]
        events.append(("end",))
        self.state = _AFTER_DELIMITER
        return True


def parse_part_headers(block):
    """A part's header block (bytes, CRLF-separated, no final blank line) as {lower name: value}.
    Values are read as UTF-8 (browsers send the file name so), bad bytes replaced."""
    headers = {}
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        name = name.strip()
        if not sep or not name or b" " in name:
            raise MultipartError("malformed part header line %r" % line[:80])
        headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace").strip()
    return headers
