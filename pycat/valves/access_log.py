"""AccessLogValve: one line per request in logs/<prefix><date><suffix> (Tomcat's).

The pattern is compiled once, at start, into a list of literals and small functions
(``compile_pattern``), and that list into the source of one function that builds the whole line
with a single %-format, the common codes written inline (``build_formatter``): per request the
valve makes one call and one format, not one call per code and a join. Codes (Tomcat 10 meanings):
%a remote IP, %A local IP, %b bytes sent ('-' for 0), %B bytes sent, %h remote host, %H protocol,
%l '-', %m method, %p local port, %q '?query' or '', %r request line, %s status, %S session id,
%t [dd/MMM/yyyy:HH:mm:ss Z], %u remote user, %U URL path, %v server name, %D microseconds,
%T seconds, %F ms until commit, %I greenlet name, %{h}i request header, %{h}o response header,
%{c}c cookie, %{a}r request attribute, %{a}s session attribute, %{local|remote}p port,
%{fmt}t strftime time. "common" and "combined" are Tomcat's aliases.

Lines are buffered in memory (``buffered``) and written on stop, from ``background_process``
(the Engine ticker) and whenever the buffer passes 64 KiB. The file rotates when the date
rendered by ``fileDateFormat`` (Java SimpleDateFormat letters) changes.
"""
import logging
import os
import re
import time
from time import time as _time

import gevent

from pycat.attrs import Attr
from pycat.core.pipeline import Valve

log = logging.getLogger(__name__)

COMMON = '%h %l %u %t "%r" %s %b'
COMBINED = COMMON + ' "%{Referer}i" "%{User-Agent}i"'
_FLUSH_BYTES = 65536
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_date_format(fmt):
    """SimpleDateFormat → strftime for the letters access logs use."""
    out, i = [], 0
    table = (("yyyy", "%Y"), ("yy", "%y"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"),
             ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSS", "000"), ("Z", "%z"), ("a", "%p"))
    while i < len(fmt):
        if fmt[i] == "'":
            end = fmt.find("'", i + 1)
            end = len(fmt) if end < 0 else end
            out.append(fmt[i + 1:end].replace("%", "%%"))
            i = end + 1
            continue
        for java, py in table:
            if fmt.startswith(java, i):
                out.append(py)
                i += len(java)
                break
        else:
            out.append("%%" if fmt[i] == "%" else fmt[i])
            i += 1
    return "".join(out)


class _Clock:
    """Per-second cache of the %t text, so a busy log formats the date once a second.

    ``start <= now < end`` is the second the text is for: the compiled line tests that (two float
    comparisons) rather than ``int(now) == second`` (a call), since it runs on every request."""
    __slots__ = ("second", "text", "start", "end")

    def __init__(self):
        self.second = -1
        self.text = ""
        self.start = self.end = 0.0

    def clf(self, now):
        sec = int(now)
        if sec != self.second:
            t = time.localtime(sec)
            self.text = "[%02d/%s/%04d:%02d:%02d:%02d %s]" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
                time.strftime("%z", t))
            self.second = sec
            self.start, self.end = float(sec), sec + 1.0
        return self.text


def _dash(value):
    return "-" if value is None or value == "" else str(value)


def _inline(template, *exprs):
    """Mark a part function with its inline form for ``build_formatter``: a %-template fragment
    and the Python expressions (over ``req``, ``resp``, ``now``) for its ``%s`` slots, which
    together give the same text as calling the function. %s applies str(), so an expression may
    leave an int as it is ("%s" % 200 == str(200))."""
    def mark(f):
        f.inline = (template, exprs)
        return f
    return mark


def _remote(valve, field, attribute):
    """%a / %h: the request's ``field`` (remote_addr / remote_host), or with
    requestAttributesEnabled the value a RemoteIpValve left in the request ``attribute``."""
    if valve.request_attributes_enabled:
        @_inline("%s", "(req.attributes.get(%r) or req.%s)" % (attribute, field))
        def f(req, resp, now):
            return req.attributes.get(attribute) or getattr(req, field)
        return f
    return _inline("%s", "req." + field)(lambda req, resp, now: getattr(req, field))


@_inline("%s %s%s %s", "req.method", "req.request_uri", '("?" + q if (q := req.query_string) else "")',
         "req.protocol")
def _request_line(req, resp, now):
    q = req.query_string
    return "%s %s%s %s" % (req.method, req.request_uri, "?" + q if q else "", req.protocol)


# resp.bytes_sent, inline (a property call costs more than the sum)
_BYTES_SENT = "(0 if resp._suppress else resp._body_len + resp._streamed)"


@_inline("%s", '(n if (n := %s) else "-")' % _BYTES_SENT)
def _bytes_clf(req, resp, now):
    n = resp.bytes_sent
    return str(n) if n else "-"


def _dashed(expr):
    """The inline form of _dash(expr)."""
    return '("-" if (v := %s) is None or v == "" else v)' % expr


def _session_id(req, resp, now):
    sid = getattr(req, "requested_session_id", None)
    return sid or "-"


SIMPLE = {
    "A": lambda req, resp, now: req.local_addr,
    "b": _bytes_clf,
    "B": _inline("%s", _BYTES_SENT)(lambda req, resp, now: str(resp.bytes_sent)),
    "H": _inline("%s", "req.protocol")(lambda req, resp, now: req.protocol),
    "l": lambda req, resp, now: "-",
    "m": _inline("%s", "req.method")(lambda req, resp, now: req.method),
    "p": lambda req, resp, now: str(req.local_port),
    "q": lambda req, resp, now: "?" + req.query_string if req.query_string else "",
    "r": _request_line,
    "s": _inline("%s", "resp.status")(lambda req, resp, now: str(resp.status)),
    "S": _session_id,
    "u": _inline("%s", _dashed("req.remote_user"))(
        lambda req, resp, now: _dash(req.remote_user)),
    "U": _inline("%s", "req.request_uri")(lambda req, resp, now: req.request_uri),
    "v": _inline("%s", "req.server_name")(lambda req, resp, now: req.server_name),
    "D": _inline("%s", "int((now - req.start_time) * 1000000)")(
        lambda req, resp, now: str(int((now - req.start_time) * 1000000))),
    "T": lambda req, resp, now: "%d" % int(now - req.start_time),
    "F": lambda req, resp, now: str(int(((resp.commit_time or now) - req.start_time) * 1000)),
    "I": lambda req, resp, now: getattr(gevent.getcurrent(), "name", None) or "greenlet",
}


def _braced(code, arg):
    if code == "i":
        return _inline("%s", _dashed("req.get_header(%r)" % arg))(
            lambda req, resp, now: _dash(req.get_header(arg)))
    if code == "o":
        return _inline("%s", _dashed("resp.get_header(%r)" % arg))(
            lambda req, resp, now: _dash(resp.get_header(arg)))
    if code == "c":
        return _inline("%s", _dashed("req.cookies.get(%r)" % arg))(
            lambda req, resp, now: _dash(req.cookies.get(arg)))
    if code == "r":
        return _inline("%s", _dashed("req.attributes.get(%r)" % arg))(
            lambda req, resp, now: _dash(req.attributes.get(arg)))
    if code == "s":
        def session_attr(req, resp, now):
            session = getattr(req, "session_if_exists", None)
            return _dash(session.get(arg) if session is not None else None)
        return session_attr
    if code == "p":
        if arg == "remote":
            return lambda req, resp, now: str(req.remote_port)
        return lambda req, resp, now: str(req.local_port)
    if code == "t":
        fmt = java_date_format(arg.split(":", 1)[1] if arg.startswith(("begin:", "end:")) else arg)
        return lambda req, resp, now: time.strftime(fmt, time.localtime(now))
    return None


def _clock_part(clock):
    def clock_text(req, resp, now):
        return clock.clf(now)
    # the text is cached per second: look at the cache before paying for a call
    clock_text.inline = ("%s", ("(_clock.text if _clock.start <= now < _clock.end else _clock.clf(now))",))
    clock_text.names = {"_clock": clock}
    return clock_text


_TOKEN = re.compile(r"%\{([^}]*)\}([a-zA-Z])|%([a-zA-Z%])")


def compile_pattern(pattern, valve):
    """Pattern text → list of str or callables (req, resp, now) → str."""
    if pattern == "common":
        pattern = COMMON
    elif pattern == "combined":
        pattern = COMBINED
    parts, pos = [], 0
    for m in _TOKEN.finditer(pattern):
        if m.start() > pos:
            parts.append(pattern[pos:m.start()])
        pos = m.end()
        if m.group(3) is not None:
            code = m.group(3)
            if code == "%":
                parts.append("%")
            elif code == "l":
                parts.append("-")     # always '-': a literal, merged with its neighbours
            elif code == "a":
                parts.append(_remote(valve, "remote_addr", "org.apache.catalina.AccessLog.RemoteAddr"))
            elif code == "h":
                parts.append(_remote(valve, "remote_host", "org.apache.catalina.AccessLog.RemoteHost"))
            elif code == "t":
                parts.append(_clock_part(valve._clock))
            elif code in SIMPLE:
                parts.append(SIMPLE[code])
            else:
                log.warning("AccessLogValve: unknown pattern code %%%s", code)
                parts.append("???")
        else:
            f = _braced(m.group(2), m.group(1))
            parts.append(f if f is not None else "???")
    if pos < len(pattern):
        parts.append(pattern[pos:])
    # merge neighbouring literals so a line is as few joins as possible
    merged = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return merged


def build_formatter(parts, newline=""):
    """The compiled pattern as ONE function (req, resp, now) → line (+ ``newline``).

    A line is built once per request; calling a small function per pattern code and joining
    their results cost more than the rest of the container's work for a hello-world request.
    So the parts become the source of a single function doing one %-format: literals go into
    the template, parts with an ``inline`` form (the common codes) put their template fragment
    and expressions in, any other part is called as before. Same text as joining the parts'
    results; ``line.source`` shows the code."""
    fmt, args, names = [], [], {}
    for i, p in enumerate(parts):
        if p.__class__ is str:
            fmt.append(p.replace("%", "%%"))
            continue
        inline = getattr(p, "inline", None)
        if inline is None:
            name = "_part%d" % i
            names[name] = p
            fmt.append("%s")
            args.append("%s(req, resp, now)" % name)
        else:
            template, exprs = inline
            fmt.append(template)
            args.extend(exprs)
            names.update(getattr(p, "names", None) or {})
    template = "".join(fmt) + newline
    if not args:
        source = "def line(req, resp, now):\n    return %r\n" % (template % ())
    else:
        source = "def line(req, resp, now):\n    return %r %% (%s,)\n" % (template, ", ".join(args))
    exec(compile(source, "<AccessLogValve pattern>", "exec"), names)
    line = names["line"]
    line.source = source
    return line


class AccessLogValve(Valve):
    directory = Attr(str, "logs", "Folder of the log files (relative to CATALINA_BASE)")
    prefix = Attr(str, "localhost_access_log", "File name prefix")
    suffix = Attr(str, ".txt", "File name suffix")
    pattern = Attr(str, "common", "Layout of a line: common, combined or %-codes")
    rotatable = Attr(bool, True, "Put the date in the name and change file when it changes")
    file_date_format = Attr(str, ".yyyy-MM-dd", "Date in the file name (SimpleDateFormat)")
    buffered = Attr(bool, True, "Buffer lines; flushed periodically and on stop")
    enabled = Attr(bool, True, "Log at all")
    encoding = Attr(str, "utf-8", "File encoding")
    condition = Attr(str, None, "Alias of conditionUnless")
    condition_unless = Attr(str, None, "Skip requests having this request attribute")
    condition_if = Attr(str, None, "Log only requests having this request attribute")
    request_attributes_enabled = Attr(bool, False, "%a/%h from RemoteIpValve's request attributes")
    resolve_hosts = Attr(bool, False, "Kept for compatibility (no reverse lookups)")
    rename_on_rotate = Attr(bool, False, "Kept for compatibility")
    max_days = Attr(int, -1, "Kept for compatibility")
    check_exists = Attr(bool, False, "Reopen the file if it was removed")
    locale = Attr(str, None, "Kept for compatibility")

    def __init__(self):
        super().__init__()
        self._parts = None
        self._buffer = []
        self._buffered_bytes = 0
        self._file = None
        self._file_date = None
        self._clock = _Clock()
        self._rotation_start = self._rotation_end = 0.0     # the second whose file name was checked
        self._on = False
        self._conditional = False
        self._flush_at = 0
        self.current_path = None

    def clock_text(self, req, resp, now):
        return self._clock.clf(now)

    def _start(self):
        # the hot path reads plain attributes, not Attr descriptors (a change needs a restart, as in Tomcat)
        self._on = self.enabled
        self._unless = self.condition_unless or self.condition
        self._if = self.condition_if
        self._rotate = self.rotatable
        self._rotation_start = self._rotation_end = 0.0     # the first line checks the file name
        self._buffer_lines = self.buffered
        self._conditional = self._unless is not None or self._if is not None
        # unbuffered: every line (never empty, it ends in "\n") passes 0 and is written at once
        self._flush_at = _FLUSH_BYTES if self._buffer_lines else 0
        self._parts = compile_pattern(self.pattern, self)
        self._format = build_formatter(self._parts)
        self._line = build_formatter(self._parts, "\n")
        self._date_fmt = java_date_format(self.file_date_format or "")
        self._open(time.time())

    def _stop(self):
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _log_dir(self):
        directory = os.path.expanduser(self.directory or "logs")
        if not os.path.isabs(directory):
            base = self.container.catalina_base if self.container is not None else os.getcwd()
            directory = os.path.join(base, directory)
        return directory

    def _open(self, now):
        directory = self._log_dir()
        os.makedirs(directory, exist_ok=True)
        date = time.strftime(self._date_fmt, time.localtime(now)) if self.rotatable else ""
        path = os.path.join(directory, self.prefix + date + self.suffix)
        if self._file is not None:
            self._file.close()
        self._file = open(path, "a", encoding=self.encoding or "utf-8")
        self._file_date = date
        self.current_path = path

    def invoke(self, request, response):
        try:
            self.next.invoke(request, response)
        finally:
            if self._on:
                if self._conditional:
                    self.log(request, response)
                else:
                    # log() without its conditions, inline: this runs once per request
                    now = _time()
                    if not self._rotation_start <= now < self._rotation_end:
                        self._rotate_if_needed(now)
                    line = self._line(request, response, now)
                    self._buffer.append(line)
                    self._buffered_bytes += len(line)
                    if self._buffered_bytes > self._flush_at:
                        self.flush()

    def format(self, request, response, now):
        return self._format(request, response, now)

    def log(self, request, response):
        # per request: every attribute read here is a plain one set by _start()
        if self._conditional:
            attributes = request.attributes
            if self._unless is not None and attributes.get(self._unless) is not None:
                return
            if self._if is not None and attributes.get(self._if) is None:
                return
        now = _time()
        if not self._rotation_start <= now < self._rotation_end:
            self._rotate_if_needed(now)
        line = self._line(request, response, now)
        self._buffer.append(line)
        self._buffered_bytes += len(line)
        if self._buffered_bytes > self._flush_at:
            self.flush()

    def _rotate_if_needed(self, now):
        """Once a second: a new file when the name's date changed."""
        if not self._rotate:
            self._rotation_start, self._rotation_end = float("-inf"), float("inf")    # never again
            return
        second = int(now)
        self._rotation_start, self._rotation_end = float(second), second + 1.0
        if time.strftime(self._date_fmt, time.localtime(now)) != self._file_date:
            self.flush()
            self._open(now)

    def flush(self):
        if not self._buffer or self._file is None:
            return
        data, self._buffer, self._buffered_bytes = "".join(self._buffer), [], 0
        if self.check_exists and not os.path.exists(self.current_path):
            self._open(time.time())
        self._file.write(data)
        self._file.flush()

    def background_process(self):
        self.flush()
