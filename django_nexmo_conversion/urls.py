"""Include in your project: ``path("nexmo/", include("django_nexmo_conversion.urls"))``."""

from django.urls import path

from .views import links, webhooks

app_name = "django_nexmo_conversion"

urlpatterns = [
    path("c/<str:token>/", links.track, name="track"),
    path("webhooks/inbound/", webhooks.inbound, name="inbound"),
    path("webhooks/receipt/", webhooks.receipt, name="receipt"),
]
