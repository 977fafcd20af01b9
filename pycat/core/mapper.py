"""The mapper: (Host header, decoded normalized path) → Host, Context, servlet wrapper, paths.

Pure: no sockets, no files, no containers required — the tables hold whatever objects the caller
registers (the Engine registers its Hosts, Contexts and Wrappers; tests register strings).

Rules, as Tomcat's Mapper and the Servlet specification (12.1, 12.2):

* Host: the Host header without its port, case-insensitive, against host names and aliases; no
  match → the default host; no default host → no host.
* Context: the longest context path that is a whole-segment prefix of the path ("" is ROOT and
  matches everything). A request for exactly a non-root context path ("/examples") is
  answered with a redirect to "/examples/" (Tomcat's mapperContextRootRedirect).
* Servlet, on the path relative to the context, first match wins:
  1. exact pattern ("/hello"), and the empty pattern "" for the context root "/";
  2. longest path prefix ("/api/*" matches "/api" and "/api/x"; "/*" matches everything);
  3. extension ("*.py" on the last segment);
  4. default ("/").
  servlet_path / path_info are as the specification defines them (path_info None when empty).
"""

__all__ = ["ServletMap", "Mapper", "MappingResult", "host_without_port"]


class MappingResult:
    __slots__ = ("host", "context", "context_path", "wrapper", "servlet_path", "path_info",
                 "redirect", "match_type", "pattern")

    def __init__(self, host=None, context=None, context_path="", wrapper=None, servlet_path="",
                 path_info=None, redirect=None, match_type=None, pattern=None):
        self.host = host
        self.context = context
        self.context_path = context_path
        self.wrapper = wrapper
        self.servlet_path = servlet_path
        self.path_info = path_info
        self.redirect = redirect
        self.match_type = match_type
        self.pattern = pattern

    def __repr__(self):
        return ("MappingResult(host=%r, context=%r, context_path=%r, wrapper=%r, servlet_path=%r, "
                "path_info=%r, redirect=%r)" % (self.host, self.context, self.context_path,
                                                 self.wrapper, self.servlet_path, self.path_info,
                                                 self.redirect))


class ServletMap:
    """One context's servlet mappings (url-pattern → wrapper)."""

    def __init__(self):
        self.exact = {}
        self.prefixes = []     # (prefix, wrapper, pattern), longest prefix first
        self.extensions = {}
        self.default = None
        self.root = None       # the "" pattern: exactly the context root

    def add(self, pattern, wrapper):
        if pattern == "":
            self.root = wrapper
        elif pattern == "/":
            self.default = wrapper
        elif pattern.startswith("*."):
            self.extensions[pattern[2:]] = wrapper
        elif pattern.endswith("/*"):
            prefix = pattern[:-2]
            self.prefixes = [p for p in self.prefixes if p[0] != prefix]
            self.prefixes.append((prefix, wrapper, pattern))
            self.prefixes.sort(key=lambda p: len(p[0]), reverse=True)
        elif pattern.startswith("/"):
            self.exact[pattern] = wrapper
        else:
            # Servlet 2.3 tolerated "hello" for "/hello"; Tomcat warns and adds the slash
            self.exact["/" + pattern] = wrapper

    def patterns(self):
        out = [(p, w) for p, w in self.exact.items()]
        out += [(pat, w) for _, w, pat in self.prefixes]
        out += [("*." + e, w) for e, w in self.extensions.items()]
        if self.default is not None:
            out.append(("/", self.default))
        if self.root is not None:
            out.append(("", self.root))
        return out

    def match(self, rel):
        """rel: path inside the context, starting with "/". → (wrapper, servlet_path, path_info, kind)."""
        if rel == "/" and self.root is not None:
            return self.root, "", "/", "root"
        wrapper = self.exact.get(rel)
        if wrapper is not None:
            return wrapper, rel, None, "exact"
        for prefix, wrapper, _ in self.prefixes:
            if rel.startswith(prefix) and (len(rel) == len(prefix) or rel[len(prefix)] == "/"):
                return wrapper, prefix, (rel[len(prefix):] or None), "path"
        if self.extensions:
            last = rel[rel.rfind("/") + 1:]
            dot = last.rfind(".")
            if dot >= 0:
                wrapper = self.extensions.get(last[dot + 1:])
                if wrapper is not None:
                    return wrapper, rel, None, "extension"
        if self.default is not None:
            return self.default, rel, None, "default"
        return None, rel, None, None


def host_without_port(header):
    if not header:
        return ""
    header = header.strip()
    if header.startswith("["):           # IPv6 literal [::1]:8080
        end = header.find("]")
        return header[:end + 1].lower() if end > 0 else header.lower()
    colon = header.rfind(":")
    if colon >= 0:
        header = header[:colon]
    return header.lower()


class _HostEntry:
    __slots__ = ("host", "contexts")

    def __init__(self, host):
        self.host = host
        self.contexts = []     # (path, context, ServletMap), longest path first


class Mapper:
    """Mapping tables; ``map()`` is the pure lookup. Results are cached per (host, path)."""

    CACHE_SIZE = 2048

    def __init__(self, default_host=None):
        self.hosts = {}        # lower-case name or alias → _HostEntry
        self.default_host = default_host.lower() if default_host else None
        self._cache = {}

    def add_host(self, name, host, aliases=()):
        entry = _HostEntry(host)
        for n in (name, *aliases):
            self.hosts[n.lower()] = entry
        self._cache.clear()
        return entry

    def add_context(self, host_name, path, context, servlet_map=None):
        entry = self.hosts[host_name.lower()]
        path = "" if path in ("", "/") else path.rstrip("/")
        entry.contexts = [c for c in entry.contexts if c[0] != path]
        entry.contexts.append((path, context, servlet_map if servlet_map is not None else ServletMap()))
        entry.contexts.sort(key=lambda c: len(c[0]), reverse=True)
        self._cache.clear()

    def map(self, host_header, path):
        key = (host_header, path)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._map(host_header, path)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = result
        return result

    def _map(self, host_header, path):
        result = MappingResult()
        entry = self.hosts.get(host_without_port(host_header))
        if entry is None and self.default_host is not None:
            entry = self.hosts.get(self.default_host)
        if entry is None:
            return result
        result.host = entry.host
        for cpath, context, smap in entry.contexts:
            if not cpath or path == cpath or path.startswith(cpath + "/") :
                break
        else:
            return result
        result.context = context
        result.context_path = cpath
        rel = path[len(cpath):]
        if not rel:
            # "/examples" → "/examples/"; the query string is added back by the caller
            result.redirect = cpath + "/"
            return result
        wrapper, servlet_path, path_info, kind = smap.match(rel)
        result.wrapper = wrapper
        result.servlet_path = servlet_path
        result.path_info = path_info
        result.match_type = kind
        return result
