"""${} substitution and Java .properties parsing (pure)."""
from pycat.startup import properties as P


def test_simple_default_and_unresolved():
    props = {"a": "1", "b": "two"}
    assert P.substitute("x${a}y${b}", props) == "x1ytwo"
    assert P.substitute("${missing:-8080}", props) == "8080"
    assert P.substitute("${a:-9}", props) == "1"
    assert P.substitute("${missing}", props) == "${missing}"
    assert P.substitute("${missing:-}", props) == ""
    assert P.substitute("no placeholders", props) == "no placeholders"
    assert P.substitute(None, props) is None


def test_nested_expansion_and_cycles_stop():
    props = {"a": "${b}", "b": "${c}", "c": "deep", "loop": "${loop}x"}
    assert P.substitute("${a}", props) == "deep"
    assert P.substitute("${x:-${c}}", props) == "deep"
    # a cycle stops after MAX_ROUNDS instead of spinning
    out = P.substitute("${loop}", props)
    assert out.startswith("${loop}") and out.endswith("x" * P.MAX_ROUNDS)


def test_colon_alone_is_not_a_default_separator():
    # Tomcat changed the separator from ":" to ":-" (bug 64398)
    assert P.substitute("${a:b}", {"a": "1"}) == "${a:b}"
    assert P.substitute("${a:b}", {"a:b": "x"}) == "x"


def test_java_properties_syntax():
    text = (
        "# comment\n"
        "! also a comment\n"
        "   \n"
        "key1=value1\n"
        "key2 : value two  \n"
        "key3 value3\n"
        "  indented.key = v\n"
        "multi = first, \\\n"
        "        second, \\\n"
        "        third\n"
        "escaped\\=key=x\n"
        "uni=caf\\u00e9\n"
        "tab=a\\tb\n"
        "trailing.backslash=end\\\\\n"
        "empty=\n"
        "dup=1\n"
        "dup=2\n"
    )
    props = P.parse_properties(text)
    assert props["key1"] == "value1"
    assert props["key2"] == "value two  "
    assert props["key3"] == "value3"
    assert props["indented.key"] == "v"
    assert props["multi"] == "first, second, third"
    assert props["escaped=key"] == "x"
    assert props["uni"] == "café"
    assert props["tab"] == "a\tb"
    assert props["trailing.backslash"] == "end\\"
    assert props["empty"] == ""
    assert props["dup"] == "2"
    assert not any(k.startswith(("#", "!")) for k in props)


def test_build_properties_precedence():
    props = P.build_properties("/base", "/home", {"x": "file", "y": "file", "catalina.base": "lie"},
                               [("y", "cli")])
    assert props == {"x": "file", "y": "cli", "catalina.base": "/base", "catalina.home": "/home"}


def test_defines_from_opts():
    assert P.defines_from_opts('-Xmx1g -Da=1 -Db="two words" -server -Dflag') == [
        ("a", "1"), ("b", "two words"), ("flag", "")]
    assert P.defines_from_opts(None) == []
