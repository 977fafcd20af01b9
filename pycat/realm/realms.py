"""Realms: who the users are, their stored credentials and their roles (Tomcat's RealmBase family).

``realm.authenticate(username, password)`` returns a ``GenericPrincipal`` (name, roles) or None;
the authenticator (authenticator.py) checks roles with ``realm.has_role(principal, role)``.
A Context uses its own Realm, else its Host's, else its Engine's (``get_realm()``).

* MemoryRealm: users from ``pathname`` (a tomcat-users.xml, relative to CATALINA_BASE).
* UserDatabaseRealm: users from the Server's GlobalNamingResources ``<Resource name=resourceName>``
  whose ``pathname`` is the tomcat-users.xml.
* CombinedRealm: nested realms asked in order; the first that authenticates wins.
* LockOutRealm: a CombinedRealm that locks a user out for ``lockOutTime`` seconds after
  ``failureCount`` consecutive failures — even the right password fails meanwhile.

MemoryRealm and UserDatabaseRealm re-read their file when it changed, checked at each
authentication and on each background tick (Tomcat's MemoryUserDatabase with watchSource checks
only on the tick), so a user added to tomcat-users.xml can log in at once.

Passwords are compared by the realm's CredentialHandler (clear text when none is configured);
an unknown user still costs one comparison, so response times do not tell which names exist.
"""
import collections
import logging
import os
import time

from pycat.attrs import Attr
from pycat.errors import LifecycleError
from pycat.lifecycle import Lifecycle
from pycat.realm import credential
from pycat.realm.user_database import UserDatabase

log = logging.getLogger(__name__)


class GenericPrincipal:
    def __init__(self, name, roles=(), realm=None):
        self.name = name
        self.roles = frozenset(roles)
        self.realm = realm

    def __repr__(self):
        return "GenericPrincipal(%r, roles=%s)" % (self.name, sorted(self.roles))

    def has_role(self, role):
        return role in self.roles


class RealmBase(Lifecycle):
    all_roles_mode = Attr(str, "strict", "How '*' in auth-constraint is read: strict, authOnly, strictAuthOnly")
    transport_guarantee_redirect_status = Attr(int, 302, "Status of the redirect to the secure port")
    realm_path = Attr(str, None, "Kept")

    def __init__(self):
        super().__init__()
        self.properties = {}
        self.realms = []
        self.credential_handler = None
        self.container = None

    def set_property(self, name, value):
        self.properties[name] = value
        return True

    def add_realm(self, realm):
        self.realms.append(realm)

    def set_credential_handler(self, handler):
        self.credential_handler = handler
        self.__dict__.pop("_dummy", None)

    def get_credential_handler(self):
        if self.credential_handler is None:
            self.credential_handler = credential.MessageDigestCredentialHandler()
        return self.credential_handler

    # -- paths -------------------------------------------------------------------------
    @property
    def catalina_base(self):
        container = self.container
        base = getattr(container, "catalina_base", None) if container is not None else None
        return base or os.environ.get("CATALINA_BASE") or os.getcwd()

    def resolve(self, path):
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.join(self.catalina_base, path)

    # -- authentication -----------------------------------------------------------------
    def get_user(self, username):
        """(stored credential, roles) or None. Subclasses with a user store override this."""
        return None

    def authenticate(self, username, password):
        if username is None or password is None:
            return None
        found = self.get_user(username)
        handler = self.get_credential_handler()
        if found is None:
            # the same work as for a real user: timing must not reveal unknown names
            handler.matches(password, self._dummy_credential(handler))
            log.debug("%s: unknown user %s", type(self).__name__, username)
            return None
        stored, roles = found
        if not handler.matches(password, stored):
            log.debug("%s: wrong password for %s", type(self).__name__, username)
            return None
        return GenericPrincipal(username, roles, self)

    def has_role(self, principal, role):
        return principal is not None and role in principal.roles

    def _dummy_credential(self, handler):
        dummy = self.__dict__.get("_dummy")
        if dummy is None:
            # the costliest handler's format (PBKDF2 when nested), so an unknown name costs as much
            nested = getattr(handler, "handlers", None) or [handler]
            costly = [h for h in nested if isinstance(h, credential.SecretKeyCredentialHandler)]
            try:
                dummy = (costly or nested)[0].mutate("not-a-password") or "00$1$00"
            except Exception:
                dummy = "00$1$00"
            self.__dict__["_dummy"] = dummy
        return dummy

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self):
        for realm in self.realms:
            if realm.container is None:
                realm.container = self.container
            realm.start()

    def _stop(self):
        for realm in reversed(self.realms):
            realm.stop()

    def background_process(self):
        for realm in self.realms:
            realm.background_process()


class CombinedRealm(RealmBase):
    def authenticate(self, username, password):
        for realm in self.realms:
            if not realm.state.available:
                continue
            principal = realm.authenticate(username, password)
            if principal is not None:
                return principal
        return None

    def has_role(self, principal, role):
        owner = getattr(principal, "realm", None)
        if owner is not None and owner is not self:
            return owner.has_role(principal, role)
        return super().has_role(principal, role)


class LockOutRealm(CombinedRealm):
    failure_count = Attr(int, 5, "Consecutive failed attempts before a user is locked out")
    lock_out_time = Attr(int, 300, "Seconds a user stays locked out")
    cache_size = Attr(int, 1000, "Users whose failures are tracked (oldest dropped first)")
    cache_removal_warning_time = Attr(int, 3600, "Warn when a record younger than this is dropped")

    def __init__(self):
        super().__init__()
        self.clock = time.monotonic        # tests inject a fake clock
        self.failed_users = collections.OrderedDict()   # name → [failures, last failure time]

    def is_locked(self, username):
        record = self.failed_users.get(username)
        if record is None or record[0] < self.failure_count:
            return False
        return self.clock() - record[1] < self.lock_out_time

    def unlock(self, username):
        self.failed_users.pop(username, None)

    def authenticate(self, username, password):
        if username is not None and self.is_locked(username):
            log.warning("An attempt was made to authenticate the locked user [%s]", username)
            return None
        principal = super().authenticate(username, password)
        if username is None:
            return principal
        if principal is None:
            self._register_failure(username)
        else:
            self.failed_users.pop(username, None)
        return principal

    def _register_failure(self, username):
        now = self.clock()
        record = self.failed_users.pop(username, None)
        if record is None or now - record[1] > self.lock_out_time:
            record = [0, now]   # first failure, or the previous lock has expired: count afresh
        record[0] += 1
        record[1] = now
        self.failed_users[username] = record
        if record[0] == self.failure_count:
            log.warning("User [%s] locked out for %d seconds after %d failed attempts",
                        username, self.lock_out_time, record[0])
        while len(self.failed_users) > max(self.cache_size, 1):
            name, (_, last) = self.failed_users.popitem(last=False)
            if now - last < self.cache_removal_warning_time:
                log.warning("LockOutRealm cache full: dropped user [%s] whose last failure was %d s ago",
                            name, now - last)


class _FileRealm(RealmBase):
    """A realm over one tomcat-users.xml, re-read when the file changes.

    The file is checked at every authentication, not only on the background tick: an operator
    who adds a user expects the next login to work, and the check is one ``os.stat`` beside a
    password comparison that costs far more. The signature compared is (inode, size, mtime in
    ns), so an editor that saves by renaming a new file over the old one is noticed even
    within one mtime tick. A file that does not parse (caught half-written, or a typo) leaves
    the previous users in place; it is logged once and not parsed again until it changes.
    """

    def __init__(self):
        super().__init__()
        self.database = None
        self._signature = None           # of the file the current users were read from
        self._failed_signature = None    # of the last version that did not load

    def users_file(self):
        raise NotImplementedError

    @staticmethod
    def _file_signature(path):
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _start(self):
        super()._start()
        path = self.users_file()
        signature = self._file_signature(path)
        self.database = UserDatabase.load(path)
        self._signature, self._failed_signature = signature, None
        log.info("%s: %d users from %s", type(self).__name__, len(self.database.users), self.database.pathname)

    def reload_if_changed(self):
        """Re-read the users file if it changed since it was read; True when new users are in place."""
        db = self.database
        if db is None or db.pathname is None:
            return False
        signature = self._file_signature(db.pathname)
        # a missing file (an editor between delete and rename) keeps the users we have
        if signature is None or signature == self._signature or signature == self._failed_signature:
            return False
        try:
            fresh = UserDatabase.load(db.pathname)
        except Exception as exc:
            self._failed_signature = signature
            log.error("%s: reloading %s failed (%s); the previous %d users stay", type(self).__name__,
                      db.pathname, exc, len(db.users))
            return False
        self.database, self._signature, self._failed_signature = fresh, signature, None
        log.info("%s: reloaded %s (%d users)", type(self).__name__, db.pathname, len(fresh.users))
        return True

    def authenticate(self, username, password):
        if self.state.available:
            self.reload_if_changed()
        return super().authenticate(username, password)

    def get_user(self, username):
        db = self.database
        user = db.find_user(username) if db is not None else None
        return None if user is None else (user.password, user.roles)

    def background_process(self):
        super().background_process()
        self.reload_if_changed()


class UserDatabaseRealm(_FileRealm):
    resource_name = Attr(str, "UserDatabase", "GlobalNamingResources entry holding the users")
    local_jndi_resource = Attr(bool, False, "Kept", xml="localJndiResource")
    use_static_principal = Attr(bool, False, "Kept")

    def users_file(self):
        container = self.container
        server = container.get_server() if container is not None and hasattr(container, "get_server") else None
        resources = getattr(server, "global_naming_resources", None)
        resource = resources.find_resource(self.resource_name) if resources is not None else None
        if resource is None:
            raise LifecycleError("UserDatabaseRealm: no GlobalNamingResources <Resource name=\"%s\">"
                                 % self.resource_name)
        return self.resolve(resource.get("pathname") or "conf/tomcat-users.xml")


class MemoryRealm(_FileRealm):
    pathname = Attr(str, "conf/tomcat-users.xml", "Users file")

    def users_file(self):
        return self.resolve(self.pathname)


class CredentialHandler(credential.NestedCredentialHandler):
    """Kept for configurations that named the placeholder: behaves as a NestedCredentialHandler."""
