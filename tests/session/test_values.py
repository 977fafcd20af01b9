"""Attribute values in and out (pycat.session.values): one load for every source, told whether the
source is trusted, with the class filter and the app's import loader; the only module that unpickles."""
import ast
import collections
import datetime
import decimal
import logging
import os
import pathlib
import re
import shlex
import shutil
import struct
import sys
import uuid

import pytest

import pycat
from conftest_pg import new_manager
from pycat.session import persistence, values
from pycat.session.manager import StandardManager
from pycat.session.store_file import FileStore
from pycat.session.store_jdbc import JDBCStore
from pycat.session.values import ValueRefused
from pycat.webapp import loader as webapp_loader
from values_helpers import ByName

pytestmark = pytest.mark.timeout(60)

HERE = __name__                       # the name this module pickles its classes under


class Allowed:
    def __init__(self, v):
        self.v = v


class Evil:
    """Whoever can write a pickle can make the loader call anything: here, a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, ("touch %s" % shlex.quote(self.marker),)


def binunicode(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def call_global(module, name, arg):
    """A protocol 4 pickle calling module.name(arg), the dotted name resolved by the unpickler."""
    return b"\x80\x04" + binunicode(module) + binunicode(name) + b"\x93" + binunicode(arg) + b"\x85R."


# -- exactly one module unpickles ------------------------------------------------------------------
UNPICKLING_MODULES = {"pickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
UNPICKLING_NAMES = {"load", "loads", "Unpickler", "_Unpickler", "Unpickler", "open"}


def unpickling_calls(source, filename="<source>"):
    """Line numbers where the source reaches a loader of pickled bytes (a load function or an
    Unpickler of one of UNPICKLING_MODULES), whatever the import spelling."""
    tree = ast.parse(source, filename)
    aliases = set()
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNPICKLING_MODULES:
                    aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            for alias in node.names:
                if alias.name in UNPICKLING_NAMES or alias.name == "*":
                    hits.append(node.lineno)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in UNPICKLING_NAMES
                and isinstance(node.value, ast.Name) and node.value.id in aliases):
            hits.append(node.lineno)
    return hits


def test_the_scanner_finds_every_spelling():
    for planted in ("import pickle\npickle.loads(b'')", "import pickle as p\np.Unpickler(f)",
                    "from dill import loads", "import dill\nx = dill.load", "import _pickle\n_pickle.loads(b)",
                    "import marshal\nmarshal.loads(b)", "from pickle import *"):
        assert unpickling_calls(planted), planted
    assert unpickling_calls("import pickle\npickle.dumps(1)\nimport json\njson.loads('1')") == []


def test_only_pycat_session_values_unpickles():
    root = pathlib.Path(pycat.__file__).parent
    found = {str(p.relative_to(root.parent)) for p in sorted(root.rglob("*.py"))
             if unpickling_calls(p.read_text(), str(p))}
    assert found == {"pycat/session/values.py"}


def test_the_app_module_prefix_is_the_loaders():
    assert values.APP_MODULE_PREFIX == webapp_loader.PREFIX


# -- trusted or not ----------------------------------------------------------------------------------
PLAIN = {
    "s": "text", "i": 2 ** 70, "f": 1.5, "c": 1 + 2j, "t": True, "n": None, "b": b"\x00\xff",
    "ba": bytearray(b"ab"), "l": [1, [2]], "tu": (1, "x"), "d": {"k": {"n": 1}}, "set": {1, 2},
    "fs": frozenset({"a"}), "date": datetime.date(2024, 1, 2), "time": datetime.time(3, 4),
    "dt": datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "td": datetime.timedelta(days=3), "dec": decimal.Decimal("1.10"), "uuid": uuid.uuid4(),
}


@pytest.mark.parametrize("key", list(PLAIN))
def test_an_untrusted_source_yields_plain_values(key):
    blob = values.dump(PLAIN[key])
    assert values.load(blob, trusted=False) == PLAIN[key]


def test_an_untrusted_source_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    blob = values.dump(Evil(marker))
    with pytest.raises(ValueRefused) as info:
        values.load(blob, trusted=False)
    assert info.value.class_name == "posix.system" and "not trusted" in str(info.value)
    assert not marker.exists()
    values.load(blob, trusted=True)                 # positive control: the payload is live
    assert marker.exists()


@pytest.mark.parametrize("value", [collections.OrderedDict(a=1), Allowed(1), len, [1, Allowed(2)]],
                         ids=["OrderedDict", "a class", "a function", "inside a list"])
def test_an_untrusted_source_refuses_every_other_class(value):
    with pytest.raises(ValueRefused):
        values.load(values.dump(value), trusted=False)


def test_a_refused_name_is_not_even_imported(tmp_path, monkeypatch):
    # a module whose import leaves a trace; the stream names a class in it
    (tmp_path / "h9_import_probe.py").write_text(
        "import pathlib\npathlib.Path(%r).write_text('imported')\nclass Thing:\n    pass\n" % str(tmp_path / "imported"))
    monkeypatch.syspath_prepend(str(tmp_path))
    blob = b"\x80\x04" + binunicode("h9_import_probe") + binunicode("Thing") + b"\x93)\x81."
    try:
        with pytest.raises(ValueRefused):
            values.load(blob, trusted=False)
        assert "h9_import_probe" not in sys.modules and not (tmp_path / "imported").exists()
        assert type(values.load(blob, trusted=True)).__name__ == "Thing"    # positive control
        assert (tmp_path / "imported").exists()
    finally:
        sys.modules.pop("h9_import_probe", None)


def test_a_filter_governs_trusted_and_untrusted_sources_alike(tmp_path):
    only = re.compile(re.escape(HERE) + r"\.Allowed|builtins\.(int|str)")
    blob = values.dump(Allowed(3))
    for trusted in (True, False):
        assert values.load(blob, trusted, only).v == 3              # allowed (not a plain value)
        with pytest.raises(ValueRefused, match="sessionAttributeValueClassNameFilter"):
            values.load(values.dump({"a": 1}), trusted, only)       # dict is not in the filter
        with pytest.raises(ValueRefused):
            values.load(values.dump(Evil(tmp_path / "ran")), trusted, only)
    assert not (tmp_path / "ran").exists()


def test_a_loose_filter_does_not_reach_what_a_dotted_name_leads_to(tmp_path):
    # "this module's things" also matches this module's imported os.system by its dotted path
    loose = re.compile(re.escape(HERE) + r"\..*")
    marker = tmp_path / "ran"
    blob = call_global(HERE, "os.system", "touch %s" % shlex.quote(str(marker)))
    with pytest.raises(ValueRefused) as info:
        values.load(blob, True, loose)
    assert info.value.class_name == "posix.system" and not marker.exists()
    assert values.load(values.dump(Allowed(1)), True, loose).v == 1     # positive control: the filter admits
    values.load(blob, trusted=True)                                     # and the payload is live
    assert marker.exists()


def test_dump_applies_the_filter_before_pickling():
    only = re.compile(r"builtins\.int")
    assert values.load(values.dump(5, only), True, only) == 5
    with pytest.raises(ValueRefused, match=re.escape(HERE + ".Allowed")):
        values.dump(Allowed(1), only)


def test_a_value_whose_rebuilding_exits_fails_like_a_damaged_one():
    blob = call_global("sys", "exit", "bye")
    with pytest.raises(ValueError, match="SystemExit"):
        values.load(blob, trusted=True)


# -- the app's loader --------------------------------------------------------------------------------
@pytest.fixture
def app(tmp_path):
    """A started WebappLoader whose classes hold model.Thing and model.Other (what an app is)."""
    classes = tmp_path / "app" / "WEB-INF" / "classes"
    classes.mkdir(parents=True)
    (classes / "model.py").write_text(
        "class Thing:\n    def __init__(self, v):\n        self.v = v\n\n\nclass Other:\n    pass\n")
    loader = webapp_loader.WebappLoader(str(classes.parent), name="valuesapp")
    loader.start()
    yield loader
    loader.stop()


def instance_blob(module, cls_name, **state):
    """The bytes of an instance of ``module.cls_name`` with int fields ``state``, naming the module
    as given (a plain name: written where the app was not isolated; an older generation's prefix)."""
    fields = b"".join(binunicode(k) + b"J" + struct.pack("<i", v) + b"s" for k, v in state.items())
    return b"\x80\x04" + binunicode(module) + binunicode(cls_name) + b"\x93)\x81}" + fields + b"b."


def test_an_app_value_written_by_the_app_loads_as_the_apps_class(app):
    thing = app.load("model:Thing")
    blob = values.dump(thing(7))
    assert thing.__module__ == app.prefix + ".model"
    got = values.load(blob, True, None, app)
    assert type(got) is thing and got.v == 7


def test_a_plain_module_name_resolves_to_the_apps_module(app):
    blob = instance_blob("model", "Thing", v=8)
    with pytest.raises(ModuleNotFoundError):
        values.load(blob, trusted=True)                 # positive control: no "model" outside the app
    got = values.load(blob, True, None, app)
    assert type(got) is app.load("model:Thing") and got.v == 8


def test_a_filter_names_app_classes_as_the_app_imports_them(app):
    only = re.compile(r"model\.Thing")
    thing, other = app.load("model:Thing"), app.load("model:Other")
    for trusted in (True, False):
        assert type(values.load(values.dump(thing(1)), trusted, only, app)) is thing
        assert type(values.load(instance_blob("model", "Thing"), trusted, only, app)) is thing
        with pytest.raises(ValueRefused, match=r"model\.Other"):
            values.load(values.dump(other()), trusted, only, app)
    assert values.dump(thing(1), only, app)
    with pytest.raises(ValueRefused):
        values.dump(other(), only, app)


def test_a_value_from_an_earlier_generation_of_the_app_loads_as_the_live_class(app):
    thing = app.load("model:Thing")
    blob = instance_blob(app.prefix + "_7.model", "Thing", v=4)
    got = values.load(blob, True, re.compile(r"model\.Thing"), app)
    assert type(got) is thing and got.v == 4


def test_a_value_of_an_older_live_generation_loads_as_the_bound_generations_class(app, tmp_path):
    # a redeploy keeps the old generation alive while the new one starts
    newer = webapp_loader.WebappLoader(app.web_inf, name="valuesapp")
    newer.start()
    try:
        assert newer.prefix != app.prefix
        blob = values.dump(app.load("model:Thing")(6))
        for only in (None, re.compile(r"model\.Thing")):
            got = values.load(blob, True, only, newer)
            assert type(got) is newer.load("model:Thing") and got.v == 6
            assert type(values.load(blob, True, only, app)) is app.load("model:Thing")   # control
    finally:
        newer.stop()


def test_another_apps_class_does_not_pass_for_ours(app, tmp_path):
    classes = tmp_path / "other" / "WEB-INF" / "classes"
    classes.mkdir(parents=True)
    (classes / "model.py").write_text("class Thing:\n    pass\n")
    other = webapp_loader.WebappLoader(str(classes.parent), name="valuesother")
    other.start()
    try:
        blob = values.dump(other.load("model:Thing")())
        only = re.compile(r"model\.Thing")
        with pytest.raises(ValueRefused, match="_pycat_webapp_valuesother"):
            values.load(blob, True, only, app)
        assert type(values.load(blob, True, only, other)) is other.load("model:Thing")   # positive control
    finally:
        other.stop()


def test_code_run_while_rebuilding_sees_the_apps_modules(app):
    # a library object that looks the app's module up by its plain name when it is rebuilt
    blob = values.dump(ByName("model", "Thing", v=5))
    with pytest.raises(ModuleNotFoundError):
        values.load(blob, trusted=True)               # positive control: unbound, "model" is nobody's
    got = values.load(blob, True, None, app)
    assert type(got) is app.load("model:Thing") and got.v == 5
    with values.bound(app):                           # one binding for a batch of loads
        assert type(values.load(blob, True, None, app)) is app.load("model:Thing")


# -- every path goes through the manager's load ----------------------------------------------------------
def standard(work, clock, **attrs):
    m = StandardManager()
    m.clock = clock
    m.work_dir = str(work)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


FILTER = r"builtins\.str|%s\.Allowed" % re.escape(HERE)


def fill(session, marker):
    session["name"] = "ana"
    session["ok"] = Allowed(5)
    session["evil"] = Evil(marker)


def test_the_restart_file_applies_the_filter_on_load(tmp_path, clock, caplog):
    marker = tmp_path / "ran"
    writer = standard(tmp_path / "w", clock)               # no filter: everything is written
    writer.start()
    s = writer.create_session()
    fill(s, marker)
    writer.stop()
    saved = tmp_path / "w" / "SESSIONS.ser"
    (tmp_path / "control").mkdir()
    shutil.copy(saved, tmp_path / "control" / "SESSIONS.ser")
    reader = standard(tmp_path / "w", clock, session_attribute_value_class_name_filter=FILTER)
    with caplog.at_level(logging.WARNING):
        reader.start()
    got = reader.find_session(s.id)
    assert got["name"] == "ana" and got["ok"].v == 5 and "evil" not in got     # allowed ones load
    assert not marker.exists()
    assert "'evil'" in caplog.text and "posix.system" in caplog.text
    control = standard(tmp_path / "control", clock)        # positive control: unfiltered, it runs
    control.start()
    assert marker.exists()
    for m in (reader, control):
        m.pathname = ""
        m.stop()


def test_the_restart_file_applies_the_filter_on_save(tmp_path, clock, caplog):
    m = standard(tmp_path, clock, session_attribute_value_class_name_filter=FILTER)
    m.start()
    s = m.create_session()
    fill(s, tmp_path / "ran")
    with caplog.at_level(logging.WARNING):
        m.stop()
    assert "'evil'" in caplog.text and "%s.Evil" % HERE in caplog.text
    back = standard(tmp_path, clock)
    back.start()
    assert sorted(back.find_session(s.id)) == ["name", "ok"]
    back.pathname = ""
    back.stop()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_store_applies_the_filter_on_load(tmp_path, clock, caplog, kind):
    def store():
        if kind == "file":
            st = FileStore()
            st.directory = str(tmp_path / "store")
        else:
            st = JDBCStore()
            st.connection_url = "sqlite:%s" % (tmp_path / "s.db")
        return st
    marker = tmp_path / "ran"
    writer = new_manager(store(), clock, tmp_path / "w")
    s = writer.create_session()
    fill(s, marker)
    writer.store.save(s)
    reader = new_manager(store(), clock, tmp_path / "r", session_attribute_value_class_name_filter=FILTER)
    with caplog.at_level(logging.WARNING):
        got = reader.store.load(s.id)
    assert got["name"] == "ana" and got["ok"].v == 5 and "evil" not in got
    assert not marker.exists() and "posix.system" in caplog.text
    assert writer.store.load(s.id) is not None and marker.exists()     # positive control: unfiltered, it runs


def test_the_manager_load_is_told_the_trust(manager, tmp_path):
    marker = tmp_path / "ran"
    blob = manager.dump_value(Evil(marker))
    assert manager.load_value(manager.dump_value({"a": [1]}), trusted=False) == {"a": [1]}
    with pytest.raises(ValueRefused):
        manager.load_value(blob, trusted=False)
    assert not marker.exists()
    manager.load_value(blob)                    # trusted by default: the restart file, the stores
    assert marker.exists()


def test_decode_leaves_out_a_refused_value_only(manager, tmp_path):
    s = manager.create_session()
    s["keep"] = "yes"
    s["odd"] = collections.OrderedDict(a=1)
    payload = persistence.encode_session(s)
    got = manager.decode_session(payload, trusted=False)
    assert dict(got.raw_attributes()) == {"keep": "yes"} and got.id == s.id
    assert sorted(manager.decode_session(payload, trusted=True).raw_attributes()) == ["keep", "odd"]


class Exits:
    """App code that ends the process when its value is rebuilt."""

    def __reduce__(self):
        return sys.exit, ("bye",)


def test_a_restart_file_value_that_exits_costs_its_session_not_the_node(tmp_path, clock, caplog):
    writer = standard(tmp_path, clock)
    writer.start()
    bad, good = writer.create_session(), writer.create_session()
    bad["x"] = Exits()
    good["name"] = "ana"
    writer.stop()
    reader = standard(tmp_path, clock)
    with caplog.at_level(logging.ERROR):
        reader.start()                                # no SystemExit out of here
    assert reader.find_session(good.id)["name"] == "ana" and reader.find_session(bad.id) is None
    assert "SystemExit" in caplog.text
    reader.pathname = ""
    reader.stop()
