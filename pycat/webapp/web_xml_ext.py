"""web.xml elements beyond servlets: filters, listeners, security constraints, login-config.

Read by ``web_xml.parse_web_xml`` for these elements (matched by local name, any namespace):

* ``<filter>`` (filter-name, filter-class, init-param) → FilterDef
* ``<filter-mapping>`` (filter-name, url-pattern*, servlet-name*, dispatcher* of REQUEST,
  FORWARD, INCLUDE, ERROR, ASYNC; none given means REQUEST) → FilterMapping, document order kept
* ``<listener>`` (listener-class) → the class name
* ``<security-constraint>`` (web-resource-collection: url-pattern*, http-method* or
  http-method-omission*; auth-constraint: role-name* — present but empty means nobody;
  user-data-constraint: transport-guarantee NONE/INTEGRAL/CONFIDENTIAL) → SecurityConstraint
* ``<login-config>`` (auth-method BASIC/FORM, realm-name, form-login-config) → LoginConfig
* ``<security-role>`` (role-name) → a name in ``security_roles``
"""
import dataclasses

from pycat.errors import ConfigError

DISPATCHER_TYPES = ("REQUEST", "FORWARD", "INCLUDE", "ERROR", "ASYNC")


@dataclasses.dataclass
class FilterDef:
    name: str
    filter_class: str = None
    init_params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FilterMapping:
    filter_name: str
    url_patterns: list = dataclasses.field(default_factory=list)
    servlet_names: list = dataclasses.field(default_factory=list)
    dispatchers: tuple = ("REQUEST",)


@dataclasses.dataclass
class ResourceCollection:
    url_patterns: list = dataclasses.field(default_factory=list)
    methods: list = dataclasses.field(default_factory=list)            # empty: every method
    omitted_methods: list = dataclasses.field(default_factory=list)

    def applies_to(self, method):
        if self.methods:
            return method in self.methods
        return method not in self.omitted_methods


@dataclasses.dataclass
class SecurityConstraint:
    collections: list = dataclasses.field(default_factory=list)
    roles: list = None              # None: no auth-constraint; []: access denied to everyone
    transport: str = "NONE"


@dataclasses.dataclass
class LoginConfig:
    auth_method: str = None
    realm_name: str = None
    form_login_page: str = None
    form_error_page: str = None


def _local(el):
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _texts(el, name):
    return [(c.text or "").strip() for c in el if _local(c) == name]


def _text(el, name, default=None):
    found = _texts(el, name)
    return found[0] if found else default


def _first(el, name):
    for c in el:
        if _local(c) == name:
            return c
    return None


def parse_element(web, kind, el, where):
    """Record one of this module's elements on ``web`` (a web_xml.WebXml)."""
    if kind == "filter":
        fdef = FilterDef(_text(el, "filter-name"), _text(el, "filter-class"))
        for p in el:
            if _local(p) == "init-param":
                fdef.init_params[_text(p, "param-name")] = _text(p, "param-value", "")
        if not fdef.name:
            raise ConfigError("filter without filter-name", file=where, line=el.sourceline, element="filter")
        web.filters.append(fdef)
    elif kind == "filter-mapping":
        dispatchers = tuple(d.upper() for d in _texts(el, "dispatcher")) or ("REQUEST",)
        for d in dispatchers:
            if d not in DISPATCHER_TYPES:
                raise ConfigError("unknown dispatcher %r" % d, file=where, line=el.sourceline,
                                  element="filter-mapping")
        web.filter_mappings.append(FilterMapping(_text(el, "filter-name"), _texts(el, "url-pattern"),
                                                 _texts(el, "servlet-name"), dispatchers))
    elif kind == "listener":
        web.listeners.append(_text(el, "listener-class"))
    elif kind == "security-constraint":
        constraint = SecurityConstraint()
        for c in el:
            part = _local(c)
            if part == "web-resource-collection":
                constraint.collections.append(ResourceCollection(
                    _texts(c, "url-pattern"), [m.upper() for m in _texts(c, "http-method")],
                    [m.upper() for m in _texts(c, "http-method-omission")]))
            elif part == "auth-constraint":
                constraint.roles = _texts(c, "role-name")
            elif part == "user-data-constraint":
                constraint.transport = (_text(c, "transport-guarantee") or "NONE").upper()
        web.security_constraints.append(constraint)
    elif kind == "login-config":
        config = LoginConfig(( _text(el, "auth-method") or "").upper() or None, _text(el, "realm-name"))
        form = _first(el, "form-login-config")
        if form is not None:
            config.form_login_page = _text(form, "form-login-page")
            config.form_error_page = _text(form, "form-error-page")
        if config.auth_method == "FORM" and not config.form_login_page:
            raise ConfigError("FORM login-config needs form-login-page", file=where, line=el.sourceline,
                              element="login-config")
        web.login_config = config
    elif kind == "security-role":
        web.security_roles.extend(_texts(el, "role-name"))


ELEMENTS = frozenset(("filter", "filter-mapping", "listener", "security-constraint", "login-config",
                      "security-role"))


def merge_into(out, defaults, app):
    """The merge rules for these elements: filters by name (app wins), mappings and listeners of
    conf/web.xml first, then the app's; constraints and roles add up; the app's login-config wins."""
    by_name = {f.name: f for f in defaults.filters}
    by_name.update({f.name: f for f in app.filters})
    out.filters = list(by_name.values())
    out.filter_mappings = list(defaults.filter_mappings) + list(app.filter_mappings)
    out.listeners = list(defaults.listeners) + [x for x in app.listeners if x not in defaults.listeners]
    out.security_constraints = list(defaults.security_constraints) + list(app.security_constraints)
    out.login_config = app.login_config or defaults.login_config
    out.security_roles = list(dict.fromkeys(list(defaults.security_roles) + list(app.security_roles)))
