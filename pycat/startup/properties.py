"""``${name}`` / ``${name:-default}`` substitution and Java ``.properties`` parsing.

Sources, highest precedence first: ``-D`` options (and -D entries of JAVA_OPTS/CATALINA_OPTS),
then ``conf/catalina.properties``; ``catalina.base`` and ``catalina.home`` always come from the
running node. (Tomcat loads catalina.properties *over* the JVM's -D values; we let the command
line win because that is what people expect when they type it.)

Substitution follows Tomcat's Digester: an unresolved placeholder stays literally ``${name}``;
a value may itself hold placeholders, expanded again, up to 20 rounds (a cycle stops there).
Pure: no I/O except :func:`load_properties_file`.
"""
import re

MAX_ROUNDS = 20
DEFAULT_SEPARATOR = ":-"

# innermost placeholders only: nested ones resolve inside-out over the rounds
_PLACEHOLDER = re.compile(r"\$\{([^${}]+)\}")


def _lookup(expr, props):
    name, sep, default = expr.partition(DEFAULT_SEPARATOR)
    value = props.get(name)
    if value is not None:
        return value
    if sep:
        return default
    return None


def substitute(text, props):
    """Replace ``${...}`` in text from the mapping props; unresolved placeholders stay as written."""
    if text is None or "${" not in text:
        return text
    for _ in range(MAX_ROUNDS):
        def repl(match):
            value = _lookup(match.group(1), props)
            return match.group(0) if value is None else str(value)

        new = _PLACEHOLDER.sub(repl, text)
        if new == text or "${" not in new:
            return new
        text = new
    return text


# -- Java properties file syntax (java.util.Properties.load) ---------------------------------------
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text):
    """Join continuation lines (an odd number of trailing backslashes) and drop comments/blanks."""
    pending = None
    for raw in text.splitlines():
        # Java strips leading whitespace of every line, continuation lines included
        line = raw.lstrip(" \t\f")
        if pending is None and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        continued = trailing % 2 == 1
        if continued:
            line = line[:-1]
        pending = line if pending is None else pending + line
        if not continued:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def _unescape(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6] or ""):
                out.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _split_key_value(line):
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=: \t\f":
            break
        i += 1
    key, rest = line[:i], line[i:]
    # separator: optional whitespace, at most one of = or :, optional whitespace
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def parse_properties(text):
    """Parse Java .properties text into a dict (later keys win, as in Java)."""
    props = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        if key:
            props[key] = value
    return props


def load_properties_file(path):
    """Read a .properties file (ISO-8859-1 like Java, which also accepts plain ASCII/UTF-8 text)."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_properties(text)


def parse_define(entry):
    """'name=value' (from -Dname=value) -> (name, value); a bare 'name' means the empty string."""
    name, _, value = entry.partition("=")
    return name.strip(), value


def defines_from_opts(opts):
    """The -Dname=value entries of a JAVA_OPTS / CATALINA_OPTS style string, in order."""
    import shlex
    found = []
    for word in shlex.split(opts or ""):
        if word.startswith("-D") and len(word) > 2:
            found.append(parse_define(word[2:]))
    return found


def build_properties(catalina_base, catalina_home, file_props=None, defines=()):
    """The mapping used for ${} substitution: file < -D < catalina.base/home."""
    props = dict(file_props or {})
    for name, value in defines:
        props[name] = value
    props["catalina.base"] = str(catalina_base)
    props["catalina.home"] = str(catalina_home)
    return props
