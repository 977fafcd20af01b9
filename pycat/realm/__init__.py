"""Realms and login: who the users are (realms.py, user_database.py, credential.py) and how a
request proves it (authenticator.py, constraints.py), enforced for web.xml security constraints."""
