"""Which security-constraints apply to a request (Tomcat's RealmBase.findSecurityConstraints).

Pure function over web_xml_ext.SecurityConstraint records. Only collections that cover the
request method count. The first phase that matches decides: every constraint with an exact
url-pattern equal to the path; else those with the longest matching ``/prefix/*``; else those
with a matching ``*.ext``; else those with ``/``. An empty result means "not constrained".
"""


def _prefix_len(pattern, path):
    """Length of the matched prefix for a '/x/*' pattern, or -1."""
    prefix = pattern[:-2]
    if pattern == "/*":
        return 0
    if path == prefix or path.startswith(prefix + "/"):
        return len(prefix)
    return -1


def find_constraints(constraints, path, method):
    exact, ext, default = [], [], []
    best_len, best = -1, []
    for constraint in constraints:
        for collection in constraint.collections:
            if not collection.applies_to(method):
                continue
            for pattern in collection.url_patterns:
                if pattern == path or (pattern == "" and path == "/"):
                    exact.append(constraint)
                elif pattern.endswith("/*"):
                    length = _prefix_len(pattern, path)
                    if length > best_len:
                        best_len, best = length, [constraint]
                    elif length == best_len and length >= 0:
                        best.append(constraint)
                elif pattern.startswith("*."):
                    slash, dot = path.rfind("/"), path.rfind(".")
                    if dot > slash and path[dot + 1:] == pattern[2:]:
                        ext.append(constraint)
                elif pattern == "/":
                    default.append(constraint)
    for found in (exact, best, ext, default):
        if found:
            return _unique(found)
    return []


def _unique(items):
    seen, out = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out
