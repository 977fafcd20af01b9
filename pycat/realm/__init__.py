"""Realms: parsed and kept; authentication is enforced in a later version."""
