"""No import cycle runs through the deployer, the cluster or the channel: the graph of pycat's modules
(every import statement, at module level or inside a function) has no circle containing a module
of pycat.startup, pycat.ha or pycat.tribes. (deploy_support <-> manager_api and static_membership
<-> tcp_ping were such circles.)"""
import ast
import pathlib

import pycat

ROOT = pathlib.Path(pycat.__file__).parent
WATCHED = ("pycat.startup", "pycat.ha", "pycat.tribes")


def module_name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph():
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # "from pkg import mod" imports the module pkg.mod; "from mod import name" imports mod
                found = [base + "." + alias.name if base + "." + alias.name in modules else base
                         for alias in node.names]
            else:
                continue
            for target in found:
                while target and target not in modules:      # import a.b.c: the deepest module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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


def test_the_graph_reader_finds_real_edges_and_circles():
    graph = import_graph()
    # positive controls: edges the code has, absolute and lazy (inside functions)
    assert "pycat.startup.deploy_support" in graph["pycat.startup.manager_api"]
    assert "pycat.startup.digester" in graph["pycat.startup.deploy_support"]        # a lazy import
    assert "pycat.tribes.group.interceptors.static_membership" in \
        graph["pycat.tribes.group.interceptors.tcp_ping"]
    # and a planted circle is found
    planted = dict(graph)
    planted["pycat.startup.deploy_support"] = graph["pycat.startup.deploy_support"] | {"pycat.startup.manager_api"}
    assert ["pycat.startup.deploy_support", "pycat.startup.manager_api"] in cycles(planted)


def test_no_circle_runs_through_startup_ha_or_tribes():
    found = [c for c in cycles(import_graph()) if any(m.startswith(WATCHED) for m in c)]
    assert found == []
