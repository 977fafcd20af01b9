"""A Django app whose ``request.session`` is the container session (web.xml: session_django:application).

Plain Django views; the configuration line is SESSION_ENGINE. Django's settings are
process-wide: whichever app configures first sets them, so each app routes with its own
urlconf per request (request.urlconf) and uses the same session settings.
"""
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path


def visits(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse("visits=%d\n" % request.session["visits"], content_type="text/plain")


def peek(request):
    return HttpResponse("visits=%s\n" % request.session.get("visits", 0), content_type="text/plain")


def login(request):
    request.session.cycle_key()
    request.session["user"] = request.GET.get("user", "alice")
    return HttpResponse("user=%s\n" % request.session["user"], content_type="text/plain")


# the urlconf as a (hashable) object: this module lives in WEB-INF/classes, which Django's lazy import
# of a ROOT_URLCONF string would not find (see pycat.webapp.loader)
class urls:
    urlpatterns = [path("", visits), path("peek", peek), path("login", login)]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="pycat-example-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="pycat.adapters.django",
        USE_TZ=True,
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 - needs the settings above


class _OwnUrls(WSGIHandler):
    """Route with this app's urls even when another Django app in the process configured first."""

    def get_response(self, request):
        request.urlconf = urls
        return super().get_response(request)


application = _OwnUrls()
