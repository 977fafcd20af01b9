"""Tomcat classes whose pycat implementation does not exist yet fail with one clear message
(pycat/reflect.py), not with a raw ModuleNotFoundError; the digester adds file, line and element.
Nothing Tomcat names is planned any more; the tests plant a name to check the mechanism."""
import sys

import pytest

from pycat import reflect
from pycat.errors import ConfigError
from pycat.startup.digester import Digester

H = "org.apache.catalina.ha."


def test_the_rule_is_generic(monkeypatch):
    # any alias whose pycat target is missing, whatever its name: a module, or a class in a module
    monkeypatch.setitem(reflect.ALIASES, "org.example.Future", "pycat.not_yet_here.module:Future")
    monkeypatch.setitem(reflect.ALIASES, "org.example.Later", "pycat.errors:NotYetAClass")
    for name, target in (("org.example.Future", "pycat.not_yet_here.module:Future"),
                         ("org.example.Later", "pycat.errors:NotYetAClass")):
        with pytest.raises(ConfigError, match=r"Tomcat class %s is recognised but not implemented in this "
                                              r"version of pycat \(planned: %s\)" % (name, target)):
            reflect.load_class(name)


@pytest.mark.parametrize("source", [
    "import no_such_dependency_for_pycat_test\n",    # a missing third-party module
    "from pycat.errors import NoSuchName\n",         # a bad import inside pycat
    "value = None.attribute\n",                       # an AttributeError while importing
])
def test_a_broken_existing_module_is_not_called_planned(tmp_path, monkeypatch, source):
    # an import failing inside an existing module is a real error and must show its cause
    import pycat
    (tmp_path / "_broken_for_test.py").write_text(source)
    monkeypatch.setattr(pycat, "__path__", list(pycat.__path__) + [str(tmp_path)])
    monkeypatch.delitem(sys.modules, "pycat._broken_for_test", raising=False)
    monkeypatch.setitem(reflect.ALIASES, "org.example.Broken", "pycat._broken_for_test:Thing")
    with pytest.raises(ConfigError) as info:
        reflect.load_class("org.example.Broken")
    assert "recognised but not implemented" not in str(info.value)
    assert "cannot be loaded" in str(info.value)
    sys.modules.pop("pycat._broken_for_test", None)


def test_unknown_names_stay_unknown():
    with pytest.raises(ConfigError, match="unknown className pycat.nothing.here:X"):
        reflect.load_class("pycat.nothing.here:X")


def test_digester_names_file_line_and_element(monkeypatch):
    # a Tomcat name whose pycat class is not built (the mechanism outlives the classes it once named:
    # BackupManager and FarmWarDeployer exist now)
    monkeypatch.setitem(reflect.ALIASES, "org.apache.catalina.ha.session.FutureManager",
                        "pycat.ha.session.future_manager:FutureManager")
    xml = ('<Server><Service><Engine name="Catalina" defaultHost="localhost">\n'
           '<Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster">\n'
           '  <Manager className="org.apache.catalina.ha.session.FutureManager"/>\n'
           '</Cluster></Engine></Service></Server>')
    with pytest.raises(ConfigError) as info:
        Digester().parse_string(xml, source="server.xml")
    text = str(info.value)
    assert text.startswith("server.xml:3 <Server/Service/Engine/Cluster/Manager>: Tomcat class "
                           "org.apache.catalina.ha.session.FutureManager is recognised but not implemented "
                           "in this version of pycat (planned: session replication)"), text


def test_the_managers_and_the_deployer_are_built():
    for name in ("session.BackupManager", "session.DeltaManager", "deploy.FarmWarDeployer"):
        cls = reflect.load_class(H + name)
        assert cls.__name__ == name.rpartition(".")[2]
