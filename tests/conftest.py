"""Shared by every test folder: this file puts tests/ on sys.path, so `from waiting import ...` works
from any of them (the folders have no __init__.py)."""
