"""The one reader of pycat's import graph, shared by tests/test_layers.py and tests/startup/test_import_graph.py
(tests/ is on sys.path, see conftest.py).

Every import is read from the AST, at module level or inside a function (lazy), absolute or relative
(resolved against the importing module's package). Dynamic imports are read too: a call of
``importlib.import_module`` (or ``import_module`` imported from importlib) or of ``__import__`` /
``builtins.__import__`` whose name is a string literal counts as an import of that module, and so does
``reflect.load_class`` / ``load_class`` with a literal pycat class name. A dynamic import whose name is not
a literal, and any other use of those import functions (an alias such as ``_orig = importlib.import_module``),
cannot be followed: it is reported as an *unresolved* dynamic import, which the layer test allows only
where an explicit, commented allow-list says so.
"""
import ast
import dataclasses
import pathlib

import pycat

ROOT = pathlib.Path(pycat.__file__).parent


@dataclasses.dataclass(frozen=True)
class Import:
    lineno: int
    target: str            # a module of pycat (dotted), or "" for an unresolved dynamic import
    kind: str              # "static", "dynamic" (literal name) or "unresolved"
    where: str = "<module>"  # the enclosing function or class (dotted qualname), "<module>" at top level
    text: str = ""         # the source of the dynamic call, for messages


def module_name(path, root=ROOT):
    rel = pathlib.Path(path).relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_sources(root=ROOT):
    """{module name: (source text, is_package)} for every module under root."""
    return {module_name(p, root): (p.read_text(), p.name == "__init__.py") for p in sorted(root.rglob("*.py"))}


def _deepest(target, modules):
    """import a.b.c: the deepest existing module among a.b.c, a.b, a."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def _resolve_relative(package, level, base):
    anchor = package.split(".")
    anchor = anchor[:len(anchor) - level + 1]
    return ".".join(anchor + ([base] if base else []))


_IMPORT_FUNCS = ("import_module", "__import__")


class _Reader(ast.NodeVisitor):
    def __init__(self, name, package, modules):
        self.name, self.package, self.modules = name, package, modules
        self.scope = []
        self.found = []
        self.importlib_names = {"importlib"}     # names bound to the importlib module
        self.import_module_names = set()         # names bound to importlib.import_module
        self.called = set()                      # id() of Name/Attribute nodes that are the callee of a Call

    # -- scopes ---------------------------------------------------------------------------------------
    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _add(self, node, target, kind, text=""):
        self.found.append(Import(node.lineno, target, kind, ".".join(self.scope) or "<module>", text))

    def _add_module(self, node, dotted, kind, text=""):
        if dotted == "pycat" or dotted.startswith("pycat."):
            target = _deepest(dotted, self.modules)
            if target and target != self.name:
                self._add(node, target, kind, text)

    # -- static imports -------------------------------------------------------------------------------
    def visit_Import(self, node):
        for alias in node.names:
            if alias.name == "importlib":
                self.importlib_names.add(alias.asname or "importlib")
            self._add_module(node, alias.name, "static")

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            base = _resolve_relative(self.package, node.level, base)
        if base == "importlib":
            for alias in node.names:
                if alias.name == "import_module":
                    self.import_module_names.add(alias.asname or alias.name)
        for alias in node.names:
            # "from pkg import mod" imports the module pkg.mod; "from mod import name" imports mod
            full = base + "." + alias.name
            self._add_module(node, full if full in self.modules else base, "static")

    # -- dynamic imports ------------------------------------------------------------------------------
    def _is_import_func(self, func):
        if isinstance(func, ast.Name):
            return func.id == "__import__" or func.id in self.import_module_names
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return ((func.attr == "import_module" and func.value.id in self.importlib_names)
                    or (func.attr == "__import__" and func.value.id == "builtins"))
        return False

    @staticmethod
    def _is_load_class(func):
        return ((isinstance(func, ast.Name) and func.id == "load_class")
                or (isinstance(func, ast.Attribute) and func.attr == "load_class"
                    and isinstance(func.value, ast.Name) and func.value.id == "reflect"))

    def _literal_package(self, node):
        """The package argument of import_module, when it is a literal or __package__/__name__."""
        arg = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "package"), None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        if isinstance(arg, ast.Name) and arg.id in ("__package__", "__name__"):
            return self.package
        return None

    def visit_Call(self, node):
        func = node.func
        first = node.args[0] if node.args else None
        literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        if self._is_import_func(func):
            self.called.add(id(func))
            text = ast.unparse(node)
            if literal is None:
                self._add(node, "", "unresolved", text)
            else:
                name = literal
                if name.startswith("."):
                    package = self._literal_package(node)
                    if package is None:
                        self._add(node, "", "unresolved", text)
                        name = ""
                    else:
                        level = len(name) - len(name.lstrip("."))
                        name = _resolve_relative(package, level, name.lstrip("."))
                if name:
                    self._add_module(node, name, "dynamic", text)
        elif self._is_load_class(func) and literal is not None:
            path = literal.partition(":")[0] if ":" in literal else literal.rpartition(".")[0]
            self._add_module(node, path, "dynamic", ast.unparse(node))
        self.generic_visit(node)

    def _reference(self, node, is_import_func):
        # a load of an import function that is not called here: an alias, followed nowhere
        if isinstance(node.ctx, ast.Load) and id(node) not in self.called and is_import_func:
            self._add(node, "", "unresolved", ast.unparse(node))

    def visit_Attribute(self, node):
        self._reference(node, self._is_import_func(node))
        self.generic_visit(node)

    def visit_Name(self, node):
        self._reference(node, self._is_import_func(node))


def read_imports(name, source, is_package, modules, filename="<source>"):
    """Every import of one module (see the module doc), as a list of Import."""
    package = name if is_package else name.rpartition(".")[0]
    reader = _Reader(name, package, modules)
    reader.visit(ast.parse(source, filename))
    return reader.found


def module_imports(sources=None):
    """{module: [Import, ...]} for every module of sources (default: all of pycat)."""
    sources = all_sources() if sources is None else sources
    return {name: read_imports(name, text, is_package, sources, name)
            for name, (text, is_package) in sources.items()}


def import_graph(sources=None):
    """{module: set of pycat modules it imports}, static and dynamic (literal) alike."""
    return {name: {i.target for i in found if i.target}
            for name, found in module_imports(sources).items()}


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def external_imports(source, filename="<source>"):
    """[(lineno, top-level name)] of every absolute import of something outside pycat (the stdlib,
    gevent, ...), at any depth of the module."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        out.extend((node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] != "pycat")
    return out


def names_used(source, filename="<source>"):
    """[(lineno, name)] of every identifier and attribute name the module uses."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.alias):
            out.append((getattr(node, "lineno", 0), node.name.rpartition(".")[2]))
    return out


def closure(graph, roots):
    """The roots, every pycat module they import directly or not, and the packages of all of them
    (importing a.b.c runs a/__init__.py and a/b/__init__.py first)."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo.extend(graph[name])
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen
