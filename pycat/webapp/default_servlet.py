"""DefaultServlet: static files from the Context's docBase (Tomcat's DefaultServlet).

* The (already normalized) path is joined to docBase and cannot climb out of it; WEB-INF/ and
  META-INF/ are 404. Symbolic links, as Tomcat: by default a path through any link is 404 (its
  realpath must be the path itself). With the Context's ``allowLinking="true"`` links are
  followed, also out of docBase as in Tomcat, but never to a WEB-INF or META-INF folder: the
  resolved path is checked too, so ``ln -s WEB-INF pub`` does not publish web.xml.
* A file asked for with a trailing slash ("/index.html/") is 404, as in Tomcat.
* Directories: "/dir" → 302 to "/dir/"; "/dir/" → the first welcome file that exists (served in
  place), or a welcome name mapped to a servlet (forwarded), or a listing when the ``listings``
  init-param is true; otherwise 404.
* Validators: ETag W/"<size>-<mtime ms>" and Last-Modified; If-None-Match / If-Modified-Since
  → 304, If-Match / If-Unmodified-Since → 412.
* Range: one "bytes=" range → 206 with Content-Range; unsatisfiable or malformed → 416;
  several ranges → the whole file (200), which RFC 9110 allows. If-Range is honoured.
* HEAD: the GET headers, no body. MIME type: conf/web.xml + WEB-INF/web.xml mime-mappings,
  then Python's mimetypes.
"""
import html
import logging
import os
from email.utils import formatdate, parsedate_to_datetime

from pycat.webapp.servlet import HttpServlet

log = logging.getLogger(__name__)

_BUFFER_LIMIT = 65536      # files up to this size are sent in the same write as the headers
_PROTECTED = ("WEB-INF", "META-INF")
_CHUNK = 65536


def _true(value):
    return str(value).strip().lower() == "true"


def parse_http_date(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_range(header, size):
    """'bytes=a-b' → (start, end) inclusive; 'FULL' to ignore (several ranges); None if bad/unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges = [r.strip() for r in spec.split(",")]
    if len(ranges) > 1:
        # validate all, then serve the whole entity
        for r in ranges:
            if parse_range("bytes=" + r, size) is None:
                return None
        return "FULL"
    first, dash, last = ranges[0].partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    try:
        if not first:                      # suffix range: the last N bytes
            n = int(last)
            if n <= 0 or not last.isdigit():
                return None
            return (max(0, size - n), size - 1) if size else None
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start > end or start >= size:
        return None
    return start, min(end, size - 1)


class DefaultServlet(HttpServlet):
    def init(self, config):
        super().init(config)
        self.listings = _true(self.get_init_parameter("listings", "false"))
        self.use_accept_ranges = _true(self.get_init_parameter("useAcceptRanges", "true"))

    def service(self, request, response):
        if request.dispatcher_type == "ERROR":
            self.serve(request, response, content=request.method != "HEAD")
            return
        super().service(request, response)

    def do_get(self, request, response):
        self.serve(request, response, content=True)

    def do_head(self, request, response):
        self.serve(request, response, content=False)

    def do_post(self, request, response):
        self.do_get(request, response)

    def do_options(self, request, response):
        response.set_header("Allow", "GET, HEAD, POST, OPTIONS")

    def allowed_methods(self):
        return ["GET", "HEAD", "POST", "OPTIONS"]

    # -- resolution ------------------------------------------------------------------------
    def relative_path(self, request):
        return request.path_info if request.path_info is not None else (request.servlet_path or "/")

    def resolve(self, context, rel):
        """rel → absolute path of the file to serve, or None (outside, protected, a link not
        allowed, or odd)."""
        if "\x00" in rel or "\\" in rel:
            return None
        parts = [p for p in rel.split("/") if p]
        if any(p in ("..", ".") for p in parts):
            return None
        if parts and parts[0].upper() in _PROTECTED:
            return None
        base = context.doc_base_path        # itself a realpath (Context start)
        joined = os.path.join(base, *parts)
        target = os.path.realpath(joined)
        if target == joined:
            return target                   # no link on the way: the common case, one realpath
        if not context.allow_linking:
            return None
        inside = base.rstrip(os.sep) + os.sep
        if target.startswith(inside):
            protected = target[len(inside):].split(os.sep, 1)[0].upper() in _PROTECTED
        else:
            # out of docBase (allowed, as Tomcat): still not into another app's private folders
            protected = any(p.upper() in _PROTECTED for p in target.split(os.sep))
        return None if protected else target

    def serve(self, request, response, content=True):
        context = request.context
        rel = self.relative_path(request)
        path = self.resolve(context, rel)
        if path is None or not os.path.exists(path):
            self._not_found(request, response)
            return
        if os.path.isdir(path):
            self.serve_directory(request, response, rel, path, content)
            return
        if rel.endswith("/"):
            # "/index.html/" names a folder and this is a file (Tomcat: 404, not the file)
            self._not_found(request, response)
            return
        self.serve_file(request, response, path, content)

    def _not_found(self, request, response):
        if request.dispatcher_type == "ERROR":
            return   # the error page itself is missing: let the ErrorReportValve answer
        response.send_error(404, "The requested resource [%s] is not available" % request.request_uri)

    def serve_directory(self, request, response, rel, path, content):
        if not rel.endswith("/"):
            query = request.query_string
            response.send_redirect(request.request_uri + "/" + ("?" + query if query else ""))
            return
        context = request.context
        welcomes = context_welcome_files(context)
        # Tomcat's order: first a welcome name mapped exactly or by prefix to a servlet, then a
        # welcome file that exists (given to its extension-mapped servlet, or served here)
        for welcome in welcomes:
            wrapper, _, _, kind = context.servlet_map.match(rel + welcome)
            if kind in ("exact", "path") and wrapper.servlet is not self:
                context.dispatch(request, response, rel + welcome, "FORWARD")
                return
        for welcome in welcomes:
            candidate = os.path.join(path, welcome)
            if not (os.path.isfile(candidate) and self.resolve(context, rel + welcome)):
                continue
            wrapper, _, _, kind = context.servlet_map.match(rel + welcome)
            if kind == "extension" and wrapper.servlet is not self:
                context.dispatch(request, response, rel + welcome, "FORWARD")
            else:
                self.serve_file(request, response, candidate, content)
            return
        if self.listings:
            self.render_listing(request, response, rel, path, content)
        else:
            self._not_found(request, response)

    def render_listing(self, request, response, rel, path, content):
        names = []
        context = request.context
        for name in sorted(os.listdir(path)):
            full = self.resolve(context, rel + name)
            if full is None:
                continue    # WEB-INF/META-INF, or a link that would not be served
            names.append(name + ("/" if os.path.isdir(full) else ""))
        title = html.escape("Directory Listing For [%s]" % rel)
        rows = "".join('<li><a href="%s">%s</a></li>' % (html.escape(n, quote=True), html.escape(n))
                       for n in names)
        page = "<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1><ul>%s</ul></body></html>" \
               % (title, title, rows)
        response.content_type = "text/html;charset=utf-8"
        body = page.encode("utf-8")
        if content:
            response.write_bytes(body)
        else:
            response.set_content_length(len(body))

    # -- files -------------------------------------------------------------------------------
    def serve_file(self, request, response, path, content):
        try:
            st = os.stat(path)
        except OSError:
            self._not_found(request, response)
            return
        size = st.st_size
        mtime_ms = int(st.st_mtime * 1000)
        etag = 'W/"%d-%d"' % (size, mtime_ms)
        last_modified = formatdate(mtime_ms // 1000, usegmt=True)
        ctype = request.context.get_mime_type(os.path.basename(path))
        error_dispatch = request.dispatcher_type == "ERROR"
        if not error_dispatch:
            response.set_header("Accept-Ranges", "bytes" if self.use_accept_ranges else "none")
            response.set_header("ETag", etag)
            response.set_header("Last-Modified", last_modified)
            if not self.check_preconditions(request, response, etag, mtime_ms // 1000):
                return
        if ctype:
            response.content_type = ctype
        start, end = 0, size - 1
        if not error_dispatch and self.use_accept_ranges:
            header = request.get_header("range")
            if header and self._if_range_ok(request, etag, mtime_ms // 1000):
                rng = parse_range(header, size)
                if rng is None:
                    response.set_header("Content-Range", "bytes */%d" % size)
                    response.send_error(416)
                    return
                if rng != "FULL":
                    start, end = rng
                    response.set_status(206)
                    response.set_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        length = end - start + 1 if size else 0
        response.set_content_length(length)
        if not content or length == 0:
            response.suppress_body()
            return
        try:
            with open(path, "rb") as fh:
                if start:
                    fh.seek(start)
                if length <= _BUFFER_LIMIT:
                    response.write_bytes(fh.read(length))
                    return
                response.flush()
                remaining = length
                while remaining > 0:
                    chunk = fh.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    response.write_bytes(chunk)
                    remaining -= len(chunk)
        except OSError as exc:
            log.warning("Reading %s failed: %s", path, exc)
            if not response.committed:
                response.send_error(404)

    def _if_range_ok(self, request, etag, mtime):
        if_range = request.get_header("if-range")
        if not if_range:
            return True
        if if_range.startswith('"') or if_range.startswith("W/"):
            return if_range.strip() == etag
        when = parse_http_date(if_range)
        return when is not None and int(when) >= mtime

    def check_preconditions(self, request, response, etag, mtime):
        """False when the response was already decided (304 / 412)."""
        if_match = request.get_header("if-match")
        if if_match:
            tags = [t.strip() for t in if_match.split(",")]
            if "*" not in tags and etag not in tags and etag.replace("W/", "") not in tags:
                response.send_error(412)
                return False
        else:
            ius = request.get_header("if-unmodified-since")
            when = parse_http_date(ius) if ius else None
            if when is not None and mtime > int(when):
                response.send_error(412)
                return False
        inm = request.get_header("if-none-match")
        if inm:
            tags = [t.strip() for t in inm.split(",")]
            weak = etag.replace("W/", "")
            if "*" in tags or any(t.replace("W/", "") == weak for t in tags):
                if request.method in ("GET", "HEAD"):
                    response.set_status(304)
                    response.suppress_body()
                else:
                    response.send_error(412)
                return False
            return True
        ims = request.get_header("if-modified-since")
        if ims and request.method in ("GET", "HEAD"):
            when = parse_http_date(ims)
            if when is not None and mtime <= int(when):
                response.set_status(304)
                response.suppress_body()
                return False
        return True


def context_welcome_files(context):
    return getattr(context, "welcome_files", None) or ()
