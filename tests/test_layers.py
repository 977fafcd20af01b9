"""The import layers of docs/design.md section 5, enforced on the source.

Every import counts (tests/import_graph.py reads them): module level or lazy inside a function, absolute
or relative, and dynamic ones (``importlib.import_module`` / ``__import__`` / ``reflect.load_class`` with a
literal pycat name are checked like an import; with a name that is not a literal they must be in
DYNAMIC_ALLOWED). Positive controls at the end plant upward imports in synthetic source and expect
the checker to fail on them."""
import functools

import pytest

from import_graph import (all_sources, closure, external_imports, import_graph, module_imports, names_used,
                          read_imports)

# each layer may import only from itself and the layers before it; layer 3 is ordered inside
LAYERS = [
    ("1", {"errors", "lifecycle", "attrs", "reflect", "fileutil", "netutil", "xmlsafe", "appcode", "__init__"}),
    ("2", {"tribes"}),
    ("3a", {"session", "realm"}),
    ("3b", {"webapp"}),
    ("3c", {"core"}),
    ("3d", {"connector", "valves", "adapters"}),
    ("4", {"ha"}),
    ("5", {"startup"}),
    ("6", {"cli", "__main__"}),
    # pycat.testing (the pytest plugin) drives nodes from outside: pycat.startup.manager_api.call and
    # pycat.webapp.war.build_war in the test process, `pycat run` in subprocesses; nothing imports it
    ("7", {"testing"}),
]

# upward imports allowed by name, each for a reason; nothing else goes up
ALLOWED_UP = {
    # compatibility aliases: README once documented SESSION_ENGINE = "pycat.session.adapters.django"
    # (and the flask module); the adapters moved above core to pycat.adapters, these modules only
    # re-bind the old names to the new modules (sys.modules alias), nothing in session uses them
    ("pycat.session.adapters.base", "pycat.adapters.base"): "alias of the old path",
    ("pycat.session.adapters.flask", "pycat.adapters.flask"): "alias of the old path",
    ("pycat.session.adapters.django", "pycat.adapters.django"): "alias of the old path",
}

# dynamic imports whose name is not a literal (or aliases of the import functions): allowed only here
DYNAMIC_ALLOWED = {
    # className resolution (server.xml's className, Tomcat names mapped to pycat paths): the names are
    # configuration, resolved at startup by the digester (layer 5) through this function
    ("pycat.reflect", "_import", "importlib.import_module(module_name)"): "className resolution",
    # the app loader (Tomcat's WebappClassLoader): keeps the original import functions to call them from
    # its hooks, which map an app's own module names to its private package; the names are the app's
    ("pycat.webapp.loader", "<module>", "builtins.__import__"): "the app loader's import hook",
    ("pycat.webapp.loader", "<module>", "importlib.import_module"): "the app loader's import hook",
}

# pure modules: wire formats and tables, no I/O; they (and every pycat module they import) use none of
# these, so they can be tested and fuzzed without a network, and a heartbeat never blocks on DNS
PURE = ("pycat.tribes.member", "pycat.tribes.io", "pycat.core.mapper", "pycat.connector.http_parse", "pycat.connector.ajp_packet", "pycat.tribes.membership.membership",
        "pycat.tribes.membership.static_protocol",
        "pycat.tribes.tipis.map_message", "pycat.tribes.tipis.map_state",
        "pycat.ha.deploy.farm_message", "pycat.ha.deploy.farm_state", "pycat.ha.deploy.file_message_factory",
        "pycat.ha.deploy.war_watcher")
IO_MODULES = {"socket", "gevent", "select", "selectors", "ssl", "asyncio", "dns", "socketserver"}
DNS_NAMES = {"getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"}


def top_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module):
    top = top_of(module)
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError("pycat.%s is in no layer of docs/design.md section 5; add it to LAYERS" % top)


def layer_violations(imports):
    """Every import that goes up a layer, and every unresolved dynamic import not allowed by name."""
    out = []
    for module, found in sorted(imports.items()):
        mine = layer_of(module)
        for imp in found:
            if imp.kind == "unresolved":
                if (module, imp.where, imp.text) not in DYNAMIC_ALLOWED:
                    out.append("%s:%d (%s) imports dynamically a name that is not a literal: %s"
                               % (module, imp.lineno, imp.where, imp.text))
                continue
            theirs = layer_of(imp.target)
            if theirs > mine and (module, imp.target) not in ALLOWED_UP:
                out.append("%s:%d imports %s%s (layer %s above %s)"
                           % (module, imp.lineno, imp.target, " dynamically" if imp.kind == "dynamic" else "",
                              LAYERS[theirs][0], LAYERS[mine][0]))
    return sorted(set(out))


def impurities(sources, graph, roots=PURE):
    out = []
    pure = closure(graph, [m for m in sources if any(m == r or m.startswith(r + ".") for r in roots)])
    for module in sorted(pure):
        text = sources[module][0]
        out += ["%s:%d imports %s" % (module, n, name) for n, name in external_imports(text, module)
                if name in IO_MODULES]
        out += ["%s:%d uses %s (DNS)" % (module, n, name) for n, name in names_used(text, module)
                if name in DNS_NAMES]
    return out


def test_every_import_respects_the_layers():
    violations = layer_violations(module_imports())
    assert not violations, "\n".join(violations)


def test_the_allow_lists_name_only_what_exists():
    """An exception that no longer matches anything must go (e.g. once the manager seam lands)."""
    imports = module_imports()
    edges = {(m, i.target) for m, found in imports.items() for i in found if i.target}
    dynamic = {(m, i.where, i.text) for m, found in imports.items() for i in found if i.kind == "unresolved"}
    stale = [e for e in ALLOWED_UP if e not in edges] + [d for d in DYNAMIC_ALLOWED if d not in dynamic]
    assert not stale, "remove from the allow-lists: %s" % stale


def test_pure_modules_do_no_io_and_no_dns():
    sources = all_sources()
    found = impurities(sources, import_graph(sources))
    assert not found, "\n".join(found)


def test_tribes_is_standalone_and_never_unpickles():
    for name, (text, _) in all_sources().items():
        if name.startswith("pycat.tribes"):
            for banned in ("pickle.loads", "dill.loads", "pickle.load(", "dill.load("):
                assert banned not in text, "%s uses %s on the transport path" % (name, banned)


# -- positive controls: the checkers fail on planted imports ------------------------------------------
@functools.lru_cache(maxsize=1)
def _real():
    sources = all_sources()
    return sources, import_graph(sources)


def _planted(name, text, is_package=False):
    sources = dict(_real()[0])
    sources[name] = (text, is_package)
    return sources


def _planted_imports(name, text, is_package=False):
    """The imports of one planted module, read against the real tree."""
    return {name: read_imports(name, text, is_package, _planted(name, text, is_package), name)}


def _planted_graph(name, text):
    sources = _planted(name, text)
    graph = dict(_real()[1])
    graph[name] = {i.target for i in read_imports(name, text, False, sources, name) if i.target}
    return sources, graph


@pytest.mark.parametrize("text, expected", [
    ("from pycat.core import context\n", "imports pycat.core.context (layer 3c above 3a)"),
    ("from ..core import context\n", "imports pycat.core.context (layer 3c above 3a)"),          # relative
    ("from .. import webapp\n", "imports pycat.webapp (layer 3b above 3a)"),                      # relative
    ("def lazy():\n    from ..connector import request\n", "imports pycat.connector.request (layer 3d"),
    ("import importlib\nimportlib.import_module('pycat.ha.cluster')\n",
     "imports pycat.ha.cluster dynamically (layer 4 above 3a)"),
    ("from importlib import import_module as im\nim('..webapp.loader', __package__)\n",
     "imports pycat.webapp.loader dynamically"),
    ("__import__('pycat.startup.catalina')\n", "imports pycat.startup.catalina dynamically"),
    ("from pycat import reflect\nreflect.load_class('pycat.valves.remote_ip:RemoteIpValve')\n",
     "imports pycat.valves.remote_ip dynamically"),
    ("import importlib\ndef f(name):\n    return importlib.import_module(name)\n",
     "(f) imports dynamically a name that is not a literal: importlib.import_module(name)"),
    ("import builtins\nf = builtins.__import__\n", "not a literal: builtins.__import__"),
    ("def f(name):\n    return __import__(name)\n", "not a literal: __import__(name)"),
])
def test_a_planted_upward_import_fails(text, expected):
    violations = layer_violations(_planted_imports("pycat.session.planted", text))
    mine = [v for v in violations if v.startswith("pycat.session.planted:")]
    assert any(expected in v for v in mine), (expected, violations)


def test_imports_inside_the_layer_and_downward_pass():
    text = ("from . import cookies\nfrom .errors import NotSerializableError\nfrom pycat import appcode\n"
            "import importlib\nimportlib.import_module('pycat.session.store')\nimport pycat.tribes.member\n"
            "from pycat.realm import credential\n")
    violations = layer_violations(_planted_imports("pycat.session.planted", text))
    assert [v for v in violations if v.startswith("pycat.session.planted:")] == []


def test_relative_imports_in_a_package_init_resolve_from_the_package():
    # in a package's __init__, "." is the package itself
    imports = _planted_imports("pycat.session.planted", "from ..cookies import x\nfrom ...core import host\n",
                               is_package=True)
    assert {i.target for i in imports["pycat.session.planted"]} == {"pycat.session.cookies", "pycat.core.host"}


@pytest.mark.parametrize("text, expected", [
    ("import socket\n", "imports socket"),
    ("def f():\n    import gevent.socket\n", "imports gevent"),
    ("from select import poll\n", "imports select"),
    ("import ssl\n", "imports ssl"),
    ("def f(h, s):\n    return s.getaddrinfo(h, None)\n", "uses getaddrinfo (DNS)"),
])
def test_a_planted_io_import_in_a_pure_module_fails(text, expected):
    assert any(expected in v for v in impurities(*_planted_graph("pycat.tribes.io.planted", text)))
    # and through an import: a pure module importing an impure one is impure too
    planted = _planted_graph("pycat.tribes.io.planted", "from pycat.tribes.transport import receiver\n")
    assert any("pycat.tribes.transport.receiver" in v for v in impurities(*planted))
