"""Tribes on gevent: the cluster's group-communication channel, wire-compatible with Tomcat 7+.

Standalone: nothing here imports the container, sessions or web apps. Wire formats live in
pure modules (member.py, io/); gevent I/O is confined to membership/ and transport/.
"""
