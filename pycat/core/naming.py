"""GlobalNamingResources, Resource and Environment, as parsed from server.xml.

pycat has no JNDI: apps do not look these entries up. A ``<Resource>`` named by a
UserDatabaseRealm's ``resourceName`` supplies that realm's users file (its ``pathname``); every
other entry is kept verbatim on ``Server.global_naming_resources`` and used by nothing (the
Server's start logs which there are)."""
import logging

log = logging.getLogger(__name__)


class ResourceRecord:
    """A <Resource>/<Environment>/<ResourceLink>: its attributes, kept verbatim."""

    def __init__(self):
        self.properties = {}

    @property
    def name(self):
        return self.properties.get("name")

    def set_property(self, name, value):
        self.properties[name] = value
        return True

    def get(self, name, default=None):
        return self.properties.get(name, default)

    def __repr__(self):
        return "ResourceRecord(%r)" % (self.properties,)


class NamingResources:
    def __init__(self):
        self.resources = []
        self.environments = []
        self.resource_links = []

    def add_resource(self, resource):
        self.resources.append(resource)

    def add_environment(self, environment):
        self.environments.append(environment)

    def add_resource_link(self, link):
        self.resource_links.append(link)

    def find_resource(self, name):
        for r in self.resources:
            if r.name == name:
                return r
        return None
