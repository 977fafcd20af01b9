from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

ITEMS = {1: "a Django view", 2: "served inside pycat", 3: "with Django's own URL routing"}


def index(request):
    links = "".join('<li><a href="%s">%s</a></li>' % (reverse("item", args=[pk]), text)
                    for pk, text in ITEMS.items())
    return HttpResponse("<!doctype html><title>Django demo</title><h1>Django demo</h1><ul>%s</ul>" % links)


def item(request, pk):
    if pk not in ITEMS:
        raise Http404("no such item")
    return JsonResponse({"id": pk, "text": ITEMS[pk], "url": reverse("item", args=[pk]),
                         "script_name": request.META.get("SCRIPT_NAME"), "path": request.path})


def go_home(request):
    return redirect("index")


def visits(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})
