"""The WSGI callable named in web.xml (``django_demo.wsgi:application``).

Django's settings are process-wide. This app configures them when it is the first Django app
in the process; either way it routes each request with its *own* urlconf (``request.urlconf``,
which Django's handler honours), so it keeps its routing next to another Django app.
"""
import django
from django.conf import settings

from django_demo import settings as demo_settings
from django_demo import urls

if not settings.configured:
    options = {name: value for name, value in vars(demo_settings).items() if name.isupper()}
    settings.configure(ROOT_URLCONF=urls, **options)
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 - after the settings


class DemoHandler(WSGIHandler):
    def get_response(self, request):
        request.urlconf = urls
        return super().get_response(request)


application = DemoHandler()
