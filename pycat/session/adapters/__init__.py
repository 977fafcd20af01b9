"""Old home of the framework adapters, now pycat.adapters (above ``core`` in the import layers).
``pycat.session.adapters.flask``, ``.django`` and ``.base`` remain as aliases of the new modules, so a
``SESSION_ENGINE = "pycat.session.adapters.django"`` or an app importing the old path keeps working.
"""
