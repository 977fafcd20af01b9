"""multipart/form-data request bodies (RFC 7578), parsed from bytes.

Wire format, with ``boundary`` from ``Content-Type: multipart/form-data; boundary=B``::

    preamble (ignored) CRLF? "--B" CRLF
    part headers (Name: value CRLF)* CRLF
    part body (any bytes, never containing CRLF "--B")
    CRLF "--B" CRLF   → the next part
    CRLF "--B--"      → the end (the epilogue after it is ignored)

Each part has ``Content-Disposition: form-data; name="field"`` and, for a file,
``filename="x.txt"`` (and usually a Content-Type). A part without a filename is a form
field: its text goes with the request parameters. The caller bounds the body size (the
Connector's maxPostSize) before calling; ``max_parts`` bounds the number of parts and
``max_header_size`` each part's header block, so a small body cannot cost much either.
"""
import io
import logging
import os

log = logging.getLogger(__name__)


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data or passes a limit."""


class Part:
    """One part: ``name``, ``filename`` (None for a plain field), ``content_type``, ``headers``
    ({lower-case name: value}) and ``data`` (bytes)."""

    def __init__(self, name, filename, headers, data):
        self.name = name
        self.filename = filename
        self.headers = headers
        self.data = data

    def __repr__(self):
        return "<Part %s%s %d bytes>" % (self.name, " file=%s" % self.filename if self.filename else "",
                                         len(self.data))

    @property
    def content_type(self):
        return self.headers.get("content-type")

    @property
    def size(self):
        return len(self.data)

    @property
    def stream(self):
        return io.BytesIO(self.data)

    def text(self, encoding="utf-8"):
        return self.data.decode(self._charset() or encoding, "replace")

    def _charset(self):
        ctype = self.content_type or ""
        for item in ctype.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            if key.lower() == "charset":
                return value.strip('"')
        return None

    def save(self, path):
        """Write the data to ``path`` (the caller picks the name: never trust ``filename`` as a path)."""
        with open(path, "wb") as fh:
            fh.write(self.data)

    @property
    def safe_filename(self):
        """The client's file name without any folder part (browsers on Windows send full paths)."""
        if self.filename is None:
            return None
        return os.path.basename(self.filename.replace("\\", "/"))


def parse_header_params(value):
    """'form-data; name="a"; filename="b c"' → ('form-data', {'name': 'a', 'filename': 'b c'})."""
    params = {}
    value = value or ""
    semi = value.find(";")
    main = (value if semi < 0 else value[:semi]).strip().lower()
    i = len(value) if semi < 0 else semi + 1
    n = len(value)
    while i < n:
        while i < n and value[i] in " \t;":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        key = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            i += 1
            out = []
            while i < n and value[i] != '"':
                # only \" and \\ are escapes: IE sent raw Windows paths (C:\dir\f.txt) unescaped
                if value[i] == "\\" and i + 1 < n and value[i + 1] in "\\\"":
                    i += 1
                out.append(value[i])
                i += 1
            i += 1
            params[key] = "".join(out)
        else:
            end = value.find(";", i)
            end = n if end < 0 else end
            params[key] = value[i:end].strip()
            i = end
    return main, params


def boundary_of(content_type):
    kind, params = parse_header_params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise MultipartError("not multipart/form-data with a boundary: %r" % content_type)
    return boundary


def _parse_headers(block, encoding):
    headers = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError("malformed part header line %r" % line[:80])
        headers[name.decode("latin-1").strip().lower()] = value.decode(encoding, "replace").strip()
    return headers


def parse(body, content_type, encoding="utf-8", max_parts=1000, max_header_size=8192):
    """The parts of ``body`` (bytes), in order."""
    delim = b"--" + boundary_of(content_type).encode("latin-1")
    if body.startswith(delim):
        pos = len(delim)
    else:
        start = body.find(b"\r\n" + delim)
        if start < 0:
            raise MultipartError("no opening boundary")
        pos = start + 2 + len(delim)
    parts = []
    sep = b"\r\n" + delim
    while True:
        if body[pos:pos + 2] == b"--":
            return parts
        if body[pos:pos + 2] != b"\r\n":
            raise MultipartError("boundary not followed by CRLF or --")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos, pos + max_header_size + 4)
        if head_end < 0:
            # a part with no headers at all starts directly with the blank line
            if body[pos:pos + 2] == b"\r\n":
                head_end = pos - 2
            else:
                raise MultipartError("part headers missing or larger than %d bytes" % max_header_size)
        headers = _parse_headers(body[pos:head_end], encoding) if head_end > pos else {}
        data_start = head_end + 4
        end = body.find(sep, data_start)
        if end < 0:
            raise MultipartError("part not terminated by a boundary")
        if len(parts) >= max_parts:
            raise MultipartError("more than %d parts" % max_parts)
        _, disp = parse_header_params(headers.get("content-disposition", ""))
        parts.append(Part(disp.get("name"), disp.get("filename"), headers, body[data_start:end]))
        pos = end + len(sep)


PARTS_ATTR = "pycat.multipart.parts"
FAILED_ATTR = "pycat.parameters.parse_failed"


def request_parts(request):
    """The parts of a multipart/form-data request (parsed once, cached on the request).

    The body is bounded by the Connector's maxPostSize; a body over it, or a malformed one,
    gives no parts and sets the ``pycat.parameters.parse_failed`` attribute (as Tomcat
    carries on with no parameters)."""
    parts = request.attributes.get(PARTS_ATTR)
    if parts is not None:
        return parts
    parts = []
    ctype = request.content_type or ""
    if ctype.split(";")[0].strip().lower() == "multipart/form-data":
        connector = request.connector
        limit = getattr(connector, "max_post_size", 2097152)
        max_parts = getattr(connector, "max_part_count", None) or 1000
        try:
            body = request.read_body(limit if limit is not None and limit >= 0 else None)
            parts = parse(body, ctype, request.character_encoding, max_parts=max_parts)
        except MultipartError as exc:
            log.info("multipart body of %s not parsed: %s", request.request_uri, exc)
            request.attributes[FAILED_ATTR] = "multipart"
        except ValueError:
            log.info("multipart body of %s not parsed: larger than maxPostSize (%s)", request.request_uri, limit)
            request.attributes[FAILED_ATTR] = "maxPostSize"
    request.attributes[PARTS_ATTR] = parts
    return parts
