"""The import layers of ARCHITECTURE.md, enforced on the source (static imports, AST)."""
import ast
import pathlib

import pycat

ROOT = pathlib.Path(pycat.__file__).parent

# each layer may import only from itself and the layers before it
LAYERS = [
    {"errors", "lifecycle", "attrs", "reflect", "fileutil", "netutil", "xmlsafe", "__init__"},
    {"tribes"},
    {"session", "webapp", "core", "connector", "valves", "realm"},
    {"ha"},
    {"startup"},
    {"cli", "__main__"},
]


def layer_of(top):
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError("pycat.%s is in no layer of ARCHITECTURE.md; add it to LAYERS" % top)


def top_name(path):
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def imported_pycat_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pycat."):
                    yield node.lineno, alias.name.split(".")[1]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import stays inside its own package
                continue
            mod = node.module or ""
            if mod == "pycat":
                for alias in node.names:
                    yield node.lineno, alias.name
            elif mod.startswith("pycat."):
                yield node.lineno, mod.split(".")[1]


def test_every_import_respects_the_layers():
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        mine = layer_of(top_name(path))
        for lineno, target in imported_pycat_modules(path):
            if target in ("__version__", "SERVER_INFO"):
                continue
            theirs = layer_of(target)
            if theirs > mine:
                violations.append("%s:%d imports pycat.%s (layer %d > %d)"
                                  % (path.relative_to(ROOT.parent), lineno, target, theirs, mine))
    assert not violations, "\n".join(violations)


def test_tribes_is_standalone_and_never_unpickles():
    for path in (ROOT / "tribes").rglob("*.py"):
        text = path.read_text()
        for banned in ("pickle.loads", "dill.loads", "pickle.load(", "dill.load("):
            assert banned not in text, "%s uses %s on the transport path" % (path, banned)
