"""Settings of the demo project (applied in wsgi.py with settings.configure).

Django's settings are process-wide: they are the same for every Django app of a pycat process,
which is why each app routes with its own urlconf per request (wsgi.py) and why the session
settings here are the container's (the examples' Django app uses the same ones).
"""
DEBUG = False
SECRET_KEY = "django-demo-not-secret-change-me"
ALLOWED_HOSTS = ["*"]            # a demo: the container's Host mapping already chose this app
INSTALLED_APPS = []
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware"]
SESSION_ENGINE = "pycat.adapters.django"     # request.session is the container session
USE_TZ = True
DATABASES = {}
