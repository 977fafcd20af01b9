"""The one way pycat parses an XML file: server.xml, context.xml, web.xml, tomcat-users.xml.

Hardened explicitly, whatever the installed lxml's defaults are (before lxml 5.0 the default
parser resolved external entities: ``<!ENTITY x SYSTEM "file:///etc/shadow">`` put a local
file into the configuration):

* ``resolve_entities=False``: no entity is substituted into text;
* ``no_network=True``: nothing is fetched over the network;
* ``load_dtd=False`` (no validation, no attribute defaults): an external DTD subset, such as the
  DOCTYPE of an old Servlet 2.3 web.xml, is never read;
* ``huge_tree=False``: libxml2's limits on depth and text size stay on.

And ``parse`` refuses, with a ConfigError naming the file, a document whose DOCTYPE declares an
entity or that references one: libxml2 still substitutes internal entities in attribute values
and turns undeclared ones into empty strings, so neither can be trusted to mean anything. (Tomcat
users who include files through entities, ``&connector-config;``, use ``${property}``
substitution from catalina.properties instead.)

Layer 1: imports nothing of pycat but errors.
"""
import os

from lxml import etree

from pycat.errors import ConfigError

PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
}


def make_parser(**extra):
    """An lxml XMLParser with PARSER_OPTIONS (``extra``: remove_comments and the like)."""
    options = dict(PARSER_OPTIONS)
    for name in extra:
        if name in PARSER_OPTIONS:
            # a caller loosening the hardening is a bug, not a configuration
            raise ValueError("xmlsafe.make_parser: %s is fixed" % name)
    options.update(extra)
    return etree.XMLParser(**options)


def parse(source, name=None, **extra):
    """The root element of ``source`` (a path, or bytes holding the document).

    Raises etree.XMLSyntaxError and OSError as lxml does (callers word them), and ConfigError
    (file=name) for a document that declares or references entities."""
    parser = make_parser(**extra)
    if isinstance(source, (bytes, bytearray)):
        root = etree.fromstring(bytes(source), parser)
        where = name or "<string>"
    else:
        path = os.fspath(source)
        root = etree.parse(path, parser).getroot()
        where = name or path
    check_entities(root, where, parser)
    return root


def check_entities(root, where, parser=None):
    """ConfigError unless the document of ``root`` is free of entity declarations and references.
    ``parser``: the one that parsed it, whose log tells of undeclared references in attributes
    (a document with an external DTD subset gets only a warning for them, and an empty string)."""
    dtd = root.getroottree().docinfo.internalDTD
    declared = sorted({entity.name for entity in dtd.iterentities()}) if dtd is not None else []
    if declared:
        raise ConfigError("the DOCTYPE declares the entit%s %s: XML entities are refused in configuration "
                          "files (they can read local files); use ${property} substitution instead"
                          % ("y" if len(declared) == 1 else "ies", ", ".join(declared)), file=where)
    for entry in (parser.error_log if parser is not None else ()):
        if entry.type_name.endswith("UNDECLARED_ENTITY"):
            raise ConfigError("%s: XML entities are refused in configuration files" % entry.message,
                              file=where, line=entry.line)
    for entity in root.iter(etree.Entity):
        raise ConfigError("undeclared entity reference %s: XML entities are refused in configuration files"
                          % entity.text, file=where, line=entity.sourceline)
