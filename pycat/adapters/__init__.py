"""Framework adapters: make a framework's session object the container's session.

* ``pycat.adapters.flask``: ``app.session_interface = PycatSessionInterface()`` (or
  ``install(app)``) makes ``flask.session`` the container session;
* ``pycat.adapters.django``: ``SESSION_ENGINE = "pycat.adapters.django"`` makes
  ``request.session`` the container session.

Either way the container owns the cookie (JSESSIONID, or the configured name), the id, expiry,
listeners, persistence and (later) replication; the framework neither signs nor stores anything.
Both read the session through ``environ["pycat.session"]`` / the current request
(pycat.core.session_support), and create a container session only when the app writes to it.

The package sits above ``core`` in the import layers (docs/design.md section 5): the Django engine finds the
current request through pycat.core.session_support. The old paths ``pycat.session.adapters.flask`` and
``pycat.session.adapters.django`` still work (thin aliases of these modules).
"""
