"""The generic rule engine that turns server.xml (or a context.xml) into objects.

It walks lxml elements depth first, in document order. For each element it finds the rule
(rules.py) for the element's path and then, like Tomcat's Digester with ObjectCreate +
SetProperties + SetNext rules:

1. creates the object: the class named by ``className`` (resolved by reflect.load_class; the
   attribute is not set as a property) or the rule's default class, called with no arguments;
2. sets every other attribute, after ``${}`` substitution, with attrs.set_property. An attribute
   nobody takes gives Tomcat's warning ``Match [path] failed to set property [x] to [y]``
   (never for ``optional``), followed by the component's reason when its ``attribute_hint(name)``
   gives one (TLS attributes pycat does not implement); in strict mode it is an error. A value
   that does not convert is always an error naming the file, line and element path;
3. digests the nested elements (so the child is complete before its parent sees it);
4. hands the finished object to its parent through the rule's method (``add_service``...).

Errors are ConfigError with file, line and element; warnings are logged and collected in
``Digester.warnings`` (``pycat configtest`` lists them).

Files are parsed by pycat.xmlsafe: no entity is resolved, no DTD loaded, nothing fetched, and a
DOCTYPE declaring entities is a ConfigError naming the file (Tomcat's trick of including a file
through an entity is not supported: use ``${property}`` substitution).
"""
import logging

from lxml import etree

from pycat import attrs, reflect, xmlsafe
from pycat.errors import ConfigError
from pycat.startup import rules as rules_module
from pycat.startup.properties import substitute

log = logging.getLogger(__name__)

NEVER_WARN = frozenset({"optional"})


class KeptElement:
    """An element that is parsed and kept but not acted upon yet (className included, unresolved)."""

    def __init__(self, tag, line=None):
        self.tag = tag
        self.line = line
        self.attributes = {}
        self.text = None

    def set_property(self, name, value):
        self.attributes[name] = value
        return True

    def get(self, name, default=None):
        return self.attributes.get(name, default)

    def __repr__(self):
        return "<KeptElement %s %r>" % (self.tag, self.attributes)


class RuleSet:
    """Pattern lookup: exact path first, then the longest matching ``*/suffix``."""

    def __init__(self, rules=None, auto_listeners=None):
        rules = rules_module.RULES if rules is None else rules
        self.auto_listeners = dict(rules_module.AUTO_LISTENERS if auto_listeners is None else auto_listeners)
        self.exact = {}
        self.wildcards = []
        for rule in rules:
            if rule.pattern.startswith("*/"):
                self.wildcards.append((rule.pattern[2:].split("/"), rule))
            else:
                self.exact[rule.pattern] = rule
        self.wildcards.sort(key=lambda item: -len(item[0]))

    def match(self, path):
        rule = self.exact.get(path)
        if rule is not None:
            return rule
        parts = path.split("/")
        for suffix, rule in self.wildcards:
            # "*/X" needs at least one element before X, as in Tomcat
            if len(parts) > len(suffix) and parts[-len(suffix):] == suffix:
                return rule
        return None


def _localname(element):
    return etree.QName(element).localname


class Digester:
    def __init__(self, ruleset=None, properties=None, strict=False):
        self.ruleset = ruleset or RuleSet()
        self.properties = dict(properties or {})
        self.strict = strict
        self.warnings = []
        self.source = "<string>"
        #: (element path, line, object) for every object created, in document order
        #: (``pycat configtest --describe`` documents each one's declared attributes)
        self.created = []

    # -- entry points -------------------------------------------------------------------------
    def parse_file(self, path):
        self.source = str(path)
        try:
            root = xmlsafe.parse(str(path), self.source, **self.PARSER_EXTRA)
        except etree.XMLSyntaxError as exc:
            raise self._syntax_error(exc) from None
        except OSError as exc:
            raise ConfigError("cannot read configuration: %s" % exc, file=self.source) from None
        return self._digest_root(root)

    def parse_string(self, text, source="<string>"):
        self.source = source
        if isinstance(text, str):
            text = text.encode("utf-8")
        try:
            root = xmlsafe.parse(text, source, **self.PARSER_EXTRA)
        except etree.XMLSyntaxError as exc:
            raise self._syntax_error(exc) from None
        return self._digest_root(root)

    # comments and processing instructions are never configuration. Entities, DTDs and network
    # fetches are refused by xmlsafe (a DOCTYPE declaring entities is a ConfigError naming the file)
    PARSER_EXTRA = {"remove_comments": True, "remove_pis": True}

    def _syntax_error(self, exc):
        line, column = exc.position if exc.position else (exc.lineno, 0)
        return ConfigError("malformed XML at line %s, column %s: %s" % (line, column, exc.msg),
                           file=self.source, line=line)

    # -- the walk ----------------------------------------------------------------------------
    def _digest_root(self, root):
        path = _localname(root)
        rule = self.ruleset.match(path)
        if rule is None or rule.method is not None:
            raise ConfigError("unexpected root element <%s>" % path, file=self.source,
                              line=root.sourceline, element=path)
        return self._digest(root, path, rule, None)

    def _error(self, message, element, path):
        return ConfigError(message, file=self.source, line=element.sourceline, element=path)

    def _warn(self, message, element):
        text = "%s:%s: %s" % (self.source, element.sourceline, message)
        if self.strict:
            raise ConfigError(message, file=self.source, line=element.sourceline)
        self.warnings.append(text)
        log.warning("%s", text)

    def _digest(self, element, path, rule, parent):
        if rule.kind == rules_module.BODY:
            text = substitute((element.text or "").strip(), self.properties)
            self._attach(parent, rule, element, path, text)
            return text
        if rule.kind == rules_module.CALL:
            values = [substitute(element.get(name), self.properties) for name in rule.args]
            missing = [name for name, value in zip(rule.args, values) if value is None]
            if missing:
                raise self._error("<%s> needs the attribute%s %s" % (_localname(element), "s" if len(missing) > 1
                                                                   else "", ", ".join(missing)), element, path)
            self._attach(parent, rule, element, path, *values)
            return None
        if rule.kind == rules_module.RECORD:
            obj = KeptElement(_localname(element), element.sourceline)
            for name, value in element.attrib.items():
                obj.set_property(name, substitute(value, self.properties))
            if element.text and element.text.strip():
                obj.text = substitute(element.text.strip(), self.properties)
        else:
            obj = self._create(element, path, rule)
            self.created.append((path, element.sourceline, obj))
            self._set_attributes(obj, element, path)
        for child in element:
            if not isinstance(child.tag, str):
                continue
            child_path = path + "/" + _localname(child)
            child_rule = self.ruleset.match(child_path)
            if child_rule is None:
                self._warn("no rule for element [%s]; ignored with its content" % child_path, child)
                continue
            self._digest(child, child_path, child_rule, obj)
        if parent is not None:
            self._attach(parent, rule, element, path, obj)
        return obj

    def _create(self, element, path, rule):
        class_name = element.get("className")
        if class_name is not None:
            class_name = substitute(class_name, self.properties)
        elif rule.default_class:
            return self._create_default(element, path, rule.default_class)
        if not class_name:
            raise self._error("className is required on <%s>" % _localname(element), element, path)
        try:
            cls = reflect.load_class(class_name)
            obj = cls()
        except ConfigError as exc:
            raise self._error(str(exc), element, path) from None
        except Exception as exc:
            raise self._error("cannot create %s: %s: %s" % (class_name, type(exc).__name__, exc),
                              element, path) from exc
        return self._add_auto_listener(obj, path)

    def _create_default(self, element, path, class_name):
        try:
            obj = reflect.load_class(class_name)()
        except Exception as exc:
            # a broken default class is a bug of pycat's, not of the file: show the real cause
            cause = exc.__cause__ if isinstance(exc, ConfigError) and exc.__cause__ else exc
            raise self._error("cannot create %s, the class of <%s>: %s: %s"
                              % (class_name, _localname(element), type(cause).__name__, cause),
                              element, path) from exc
        return self._add_auto_listener(obj, path)

    def _add_auto_listener(self, obj, path):
        listener_class = self.ruleset.auto_listeners.get(path)
        if listener_class and hasattr(obj, "add_lifecycle_listener"):
            obj.add_lifecycle_listener(reflect.load_class(listener_class)())
        return obj

    def _set_attributes(self, obj, element, path):
        for name, raw in element.attrib.items():
            name = etree.QName(name).localname
            if name == "className":
                continue
            value = substitute(raw, self.properties)
            try:
                applied = attrs.set_property(obj, name, value)
            except attrs.ConversionError as exc:
                raise self._error("Match [%s] cannot set property [%s] to [%s]: %s"
                                  % (path, name, value, exc), element, path) from None
            except ConfigError as exc:
                raise self._error(str(exc), element, path) from None
            except (TypeError, ValueError) as exc:
                raise self._error("Match [%s] cannot set property [%s] to [%s]: %s"
                                  % (path, name, value, exc), element, path) from None
            if not applied and name not in NEVER_WARN:
                # a component may say why it refuses (TLS attributes pycat does not implement)
                hint_of = getattr(obj, "attribute_hint", None)
                hint = hint_of(name) if callable(hint_of) else None
                self._warn("Match [%s] failed to set property [%s] to [%s]%s"
                           % (path, name, value, ": " + hint if hint else ""), element)

    def _attach(self, parent, rule, element, path, *args):
        method = getattr(parent, rule.method, None)
        if method is None:
            if rule.kind == rules_module.RECORD:
                # parsed and kept for later work; the parent does not use it yet
                parent.__dict__.setdefault("kept_elements", []).append(args[0])
                log.info("%s:%s: <%s> is kept but not used yet", self.source, element.sourceline, path)
                return
            raise self._error("%s does not accept <%s> (it has no %s())"
                              % (type(parent).__name__, _localname(element), rule.method), element, path)
        try:
            method(*args)
        except ConfigError as exc:
            if exc.file:
                raise
            raise self._error(str(exc), element, path) from None
        except Exception as exc:
            raise self._error("%s.%s failed: %s: %s" % (type(parent).__name__, rule.method,
                                                         type(exc).__name__, exc), element, path) from exc
