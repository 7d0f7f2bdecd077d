from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("ws/echo", views.echo),
    path("ws/chat/<str:room>", views.chat),
]
