"""ContextName rules of HostConfig (deployment itself is tested with real Hosts in tests/deploy)."""
import pytest

from pycat.startup.host_config import context_path_for


@pytest.mark.parametrize("name, path, version", [
    ("ROOT", "", ""), ("app", "/app", ""), ("a#b", "/a/b", ""), ("a#b#c", "/a/b/c", ""),
    ("app##2", "/app", "2"), ("ROOT##1.0", "", "1.0"), ("shop.war", "/shop", ""),
])
def test_context_names(name, path, version):
    assert context_path_for(name) == (path, version)
