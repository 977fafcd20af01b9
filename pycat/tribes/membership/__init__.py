"""Membership services: who is in the cluster. ``membership`` is the pure member table;
``mcast`` finds members by UDP multicast heartbeats, ``static`` from a configured list (its
announcements' wire form and table rules, pure, in ``static_protocol``)."""
