"""A small Django project served by pycat as the web application in webapps/django-demo."""
