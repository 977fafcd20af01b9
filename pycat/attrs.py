"""Attributes declared once: ``port = Attr(int, 8080, "TCP port to listen on")``.

An Attr is a descriptor. Its Python name is snake_case (``connection_timeout``); its XML name is
Tomcat's camelCase (``connectionTimeout``), derived unless given. Assigning a string converts it
with Tomcat's rules (IntrospectionUtils.setProperty):

* bool: only a case-insensitive "true" is True; anything else is False, never an error;
* int / float: decimal text; anything else is a ConversionError (we are stricter than Tomcat,
  which logs and carries on: a mistyped port should stop configtest, not be ignored);
* list: comma-separated, whitespace stripped, empties dropped;
* any other callable: called with the string (it raises ValueError on bad input).

``configurable_attrs(cls)`` lists every declared Attr (for the digester); ``describe(cls)`` is the
same as rows of documentation (``pycat configtest --describe``).
"""
import collections
import re

_MISSING = object()


class ConversionError(ValueError):
    """An XML attribute string could not be converted to the declared type."""


def to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def to_list(value):
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def camel_to_snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def snake_to_camel(name):
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Attr:
    """A configurable attribute of a component class."""

    def __init__(self, type=str, default=None, doc="", *, xml=None, aliases=(), choices=None):
        self.type = type
        self.default = default
        self.doc = doc
        self.xml_name = xml
        self.aliases = tuple(aliases)
        self.choices = choices
        self.name = None

    def __set_name__(self, owner, name):
        self.name = name
        if self.xml_name is None:
            self.xml_name = snake_to_camel(name)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__.get(self.name, _MISSING)
        if value is _MISSING:
            default = self.default
            # mutable defaults are copied per instance
            if isinstance(default, (list, dict, set)):
                default = type(default)(default)
                obj.__dict__[self.name] = default
            return default
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.convert(value)

    def convert(self, value):
        if value is None:
            return None
        kind = self.type
        try:
            if kind is bool:
                value = to_bool(value)
            elif kind is list:
                value = to_list(value)
            elif kind is int:
                value = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip(), 10)
            elif kind is float:
                value = float(value)
            elif kind is str:
                value = str(value)
            elif callable(kind):
                value = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConversionError("cannot convert %r for attribute %s (%s): %s"
                                  % (value, self.xml_name, getattr(kind, "__name__", kind), exc)) from None
        if self.choices is not None and value not in self.choices:
            raise ConversionError("attribute %s must be one of %s, not %r"
                                  % (self.xml_name, ", ".join(map(str, self.choices)), value))
        return value

    def __repr__(self):
        return "Attr(%s, %r)" % (self.xml_name, self.default)


def configurable_attrs(cls):
    """{xml name (and aliases): Attr} over the class's MRO, base classes first."""
    found = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Attr):
                found[value.xml_name] = value
                for alias in value.aliases:
                    found[alias] = value
    return found


def find_attr(cls, xml_name):
    attrs = configurable_attrs(cls)
    attr = attrs.get(xml_name)
    if attr is None:
        # Tomcat matches setter names case-insensitively in the first letter only; be a little kinder
        lowered = {k.lower(): v for k, v in attrs.items()}
        attr = lowered.get(xml_name.lower())
    return attr


def set_property(obj, xml_name, value):
    """Set an XML attribute on obj. True if applied; False if obj knows no such attribute.

    Order as Tomcat: a declared Attr; else the object's own generic ``set_property(name, value)``
    (returning True when it took the value). Conversion errors raise ConversionError.
    """
    attr = find_attr(type(obj), xml_name)
    if attr is not None:
        setattr(obj, attr.name, value)
        return True
    generic = getattr(obj, "set_property", None)
    if generic is not None and callable(generic):
        return bool(generic(xml_name, value))
    return False


AttrInfo = collections.namedtuple("AttrInfo", "xml_name type default doc aliases")


def type_name(kind):
    """How the documentation names a declared type: int, bool, str...; for a converter function
    its ``label`` if it has one, else its name without a leading underscore or ``parse_``."""
    label = getattr(kind, "label", None)
    if label:
        return label
    name = (getattr(kind, "__name__", None) or type(kind).__name__).lstrip("_")
    return name[len("parse_"):] if name.startswith("parse_") else name


def describe(cls):
    """The declared attributes of a class, one AttrInfo each (XML name, type name, default,
    documentation line, other accepted XML names), base classes first: what ``pycat configtest
    --describe`` prints for each element of server.xml."""
    rows = []
    seen = set()
    for attr in configurable_attrs(cls).values():
        if id(attr) in seen:
            continue
        seen.add(id(attr))
        rows.append(AttrInfo(attr.xml_name, type_name(attr.type), attr.default, attr.doc, attr.aliases))
    return rows
