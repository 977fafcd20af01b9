"""conf/tomcat-users.xml: Tomcat's MemoryUserDatabase, read-only.

    <tomcat-users>
      <role rolename="manager"/>
      <group groupname="admins" roles="manager,admin"/>
      <user username="bob" password="stored-credential" roles="user" groups="admins"/>
    </tomcat-users>

``username`` may also be spelled ``name`` (Tomcat 6); ``roles`` and ``groups`` are comma
lists; a user's effective roles are their own plus those of their groups. The password is the
stored credential: clear text or a CredentialHandler format (see credential.py).
"""
import dataclasses
import logging
import os

from lxml import etree

from pycat import xmlsafe
from pycat.errors import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class User:
    username: str
    password: str
    roles: frozenset
    full_name: str = None


def _split(value):
    return [p.strip() for p in (value or "").split(",") if p.strip()]


class UserDatabase:
    def __init__(self, users=None, roles=()):
        self.users = dict(users or {})
        self.roles = set(roles)
        self.pathname = None
        self.mtime = None

    @classmethod
    def load(cls, pathname):
        try:
            # no entities, DTDs or network; a DOCTYPE declaring entities is a ConfigError
            root = xmlsafe.parse(pathname)
        except etree.XMLSyntaxError as exc:
            raise ConfigError("malformed XML: %s" % exc.msg, file=pathname,
                              line=exc.position[0] if exc.position else None) from None
        except OSError as exc:
            raise ConfigError("cannot read the user database: %s" % exc, file=pathname) from None
        groups = {}
        roles = set()
        entries = []
        for el in root:
            kind = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""
            if kind == "role" and el.get("rolename"):
                roles.add(el.get("rolename"))
            elif kind == "group" and el.get("groupname"):
                groups[el.get("groupname")] = _split(el.get("roles"))
            elif kind == "user":
                entries.append(el)
        users = {}
        for el in entries:
            name = el.get("username") or el.get("name")
            if not name:
                log.warning("%s:%s: <user> without username ignored", pathname, el.sourceline)
                continue
            user_roles = set(_split(el.get("roles")))
            for group in _split(el.get("groups")):
                user_roles.update(groups.get(group, ()))
            users[name] = User(name, el.get("password"), frozenset(user_roles), el.get("fullName"))
        db = cls(users, roles)
        db.pathname = pathname
        db.mtime = os.path.getmtime(pathname)
        return db

    def find_user(self, username):
        return self.users.get(username)

    def changed_on_disk(self):
        try:
            return self.pathname is not None and os.path.getmtime(self.pathname) != self.mtime
        except OSError:
            return False
