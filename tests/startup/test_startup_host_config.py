"""ContextName rules HostConfig names apps by (deployment itself is tested with real Hosts in tests/deploy)."""
import pytest

from pycat.webapp.war import ContextName


@pytest.mark.parametrize("name, path, version", [
    ("ROOT", "", ""), ("app", "/app", ""), ("a#b", "/a/b", ""), ("a#b#c", "/a/b/c", ""),
    ("app##2", "/app", "2"), ("ROOT##1.0", "", "1.0"), ("shop.war", "/shop", ""),
])
def test_context_names(name, path, version):
    cname = ContextName.from_base_name(name)
    assert (cname.path, cname.version) == (path, version)
