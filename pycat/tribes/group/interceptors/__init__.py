"""Interceptors, one per module; the className alias table in pycat/reflect.py names them."""
