"""Realm placeholders: <Realm> elements of a stock server.xml are parsed and kept, not enforced.

Every attribute is kept (``properties``) and the common ones are declared; nested realms
(CombinedRealm, LockOutRealm) and a CredentialHandler are kept too. Starting a realm logs at
info level that it is not enforced yet, so nobody believes a protected app is protected.
"""
import logging

from pycat.attrs import Attr, configurable_attrs
from pycat.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class RealmBase(Lifecycle):
    all_roles_mode = Attr(str, "strict", "Kept: how '*' in auth-constraint is read")
    transport_guarantee_redirect_status = Attr(int, 302, "Kept")
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

    def describe_settings(self):
        settings = {attr.xml_name: self.__dict__[attr.name]
                    for attr in configurable_attrs(type(self)).values() if attr.name in self.__dict__}
        settings.update(self.properties)
        return ", ".join("%s=%s" % kv for kv in sorted(settings.items())) or "defaults"

    def _start(self):
        log.info("%s parsed and kept (%s); realms are enforced in a later version of pycat",
                 type(self).__name__, self.describe_settings())
        for realm in self.realms:
            realm.start()

    def _stop(self):
        for realm in reversed(self.realms):
            realm.stop()

    def background_process(self):
        for realm in self.realms:
            realm.background_process()


class CombinedRealm(RealmBase):
    pass


class LockOutRealm(CombinedRealm):
    failure_count = Attr(int, 5, "Failed attempts before a user is locked out")
    lock_out_time = Attr(int, 300, "Seconds a user stays locked out")
    cache_size = Attr(int, 1000, "Users tracked")
    cache_removal_warning_time = Attr(int, 3600, "Seconds")


class UserDatabaseRealm(RealmBase):
    resource_name = Attr(str, "UserDatabase", "GlobalNamingResources entry holding the users")
    local_jndi_resource = Attr(bool, False, "Kept", xml="localJndiResource")
    use_static_principal = Attr(bool, False, "Kept")


class MemoryRealm(RealmBase):
    pathname = Attr(str, "conf/tomcat-users.xml", "Users file")


class CredentialHandler:
    """<CredentialHandler> (MessageDigest, SecretKey, Nested): attributes kept for the later realm work."""

    def __init__(self):
        self.properties = {}
        self.handlers = []

    def set_property(self, name, value):
        self.properties[name] = value
        return True

    def add_credential_handler(self, handler):
        self.handlers.append(handler)
