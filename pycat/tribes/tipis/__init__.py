"""Replicated maps on the Tribes channel (Tomcat's ``org.apache.catalina.tribes.tipis``).

``map_message`` (the wire form) and ``map_state`` (the entry table and its decisions) are pure;
``lazy_replicated_map`` is the gevent adapter that runs them over a channel and its RPC layer.
This package file imports nothing, so importing a pure module never pulls gevent in.
"""
