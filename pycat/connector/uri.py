"""Request-URI checking and normalization (Tomcat's CoyoteAdapter.normalize), pure.

Input: the raw path of the request-target (before '?'), as pywsgi gives it (latin-1 text of the
wire bytes). Output: (decoded normalized path, path parameters). Steps, and why:

1. absolute-form "http://host/path" is reduced to its path;
2. ";name=value" path parameters are cut from each segment (";jsessionid=..." is a session id);
3. "%2F"/"%5C" (encoded "/" and "\\") are rejected — Tomcat's default
   encodedSolidusHandling="reject" — because after decoding they would change segmentation;
4. %-decoding to bytes, then the connector's URIEncoding (strict: bad bytes → 400);
5. NUL and "\\" are rejected (Tomcat's ALLOW_BACKSLASH=false);
6. "//" collapses, "." segments drop, ".." removes the previous segment; a ".." that would
   climb above "/" is rejected. The result always starts with "/" and can never name
   anything outside the root it is later joined to.
Any rejection raises BadUri, which the adapter answers with 400.
"""
from urllib.parse import unquote_to_bytes


class BadUri(ValueError):
    pass


def split_path_parameters(path):
    params = {}
    if ";" not in path:
        return path, params
    out = []
    for segment in path.split("/"):
        name, sep, rest = segment.partition(";")
        if sep:
            for item in rest.split(";"):
                key, _, value = item.partition("=")
                if key:
                    params.setdefault(key, value)
        out.append(name)
    return "/".join(out), params


def remove_dot_segments(path):
    if path.find("//") < 0 and path.find("/.") < 0:
        return path
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    stack = []
    for segment in path.split("/"):
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if not stack:
                raise BadUri("path climbs above the root")
            stack.pop()
            continue
        stack.append(segment)
    result = "/" + "/".join(stack)
    if trailing and stack:
        result += "/"
    return result


def normalize(raw, encoding="utf-8"):
    """→ (path, path_parameters). Raises BadUri."""
    if raw.startswith("/") and raw.isascii() and "%" not in raw and ";" not in raw \
            and "\\" not in raw and "\x00" not in raw:
        if "//" not in raw and "/." not in raw:
            return raw, {}      # nothing to decode nor to normalise: the common case, without a call
        return remove_dot_segments(raw), {}
    if not raw.startswith("/"):
        scheme_end = raw.find("://")
        if scheme_end > 0 and raw[:scheme_end].lower() in ("http", "https"):
            slash = raw.find("/", scheme_end + 3)
            raw = raw[slash:] if slash >= 0 else "/"
        else:
            raise BadUri("request-target must start with /")
    path, params = split_path_parameters(raw)
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        raise BadUri("encoded / or \\ in the path")
    if "%" in path:
        try:
            data = unquote_to_bytes(path)
        except Exception:
            raise BadUri("bad %-escape") from None
        for i in range(len(path)):
            if path[i] == "%":
                hexpart = path[i + 1:i + 3]
                if len(hexpart) != 2 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
                    raise BadUri("bad %-escape")
    else:
        data = path.encode("latin-1")
    try:
        path = data.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise BadUri("path is not valid %s" % encoding) from None
    if "\x00" in path or "\\" in path:
        raise BadUri("NUL or backslash in the path")
    return remove_dot_segments(path), params
