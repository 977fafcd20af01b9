from django.urls import path

from django_demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("items/<int:pk>", views.item, name="item"),
    path("home", views.go_home, name="home"),
    path("visits", views.visits, name="visits"),
]
