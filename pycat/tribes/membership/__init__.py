"""Membership services: who is in the cluster. ``membership`` is the pure member table;
``mcast`` finds members by UDP multicast heartbeats, ``static`` from a configured list."""
