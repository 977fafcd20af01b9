"""A library-like module (neither pycat nor an app) whose objects, when rebuilt from a pickle, find
a module by its plain name, as frameworks do (a model registry keyed by module name): that works
for an app's module only while the app's loader is bound."""
import importlib


def rebuild(module, attr, state):
    cls = getattr(importlib.import_module(module), attr)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


class ByName:
    """Pickles as 'rebuild the instance of module.attr with this state'."""

    def __init__(self, module, attr, **state):
        self.module, self.attr, self.state = module, attr, state

    def __reduce__(self):
        return rebuild, (self.module, self.attr, self.state)
