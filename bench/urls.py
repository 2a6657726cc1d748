from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from django_nexmo_conversion import mark_converted


def mark(request: HttpRequest, message_id: str) -> HttpResponse:
    """A view that marks a conversion, as a 2FA check would (bench/view_latency.py)."""
    mark_converted(message_id)
    return HttpResponse("ok")


urlpatterns = [path("admin/", admin.site.urls), path("mark/<str:message_id>/", mark)]
