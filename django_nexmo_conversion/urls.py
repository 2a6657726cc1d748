"""Include in your project: ``path("nexmo/", include("django_nexmo_conversion.urls"))``."""

from django.urls import path

from .views import links, webhooks

app_name = "django_nexmo_conversion"

urlpatterns = [
    path("c/<str:token>/", links.track, name="track"),
    path("webhooks/inbound/", webhooks.inbound, name="inbound"),
    path("webhooks/receipt/", webhooks.receipt, name="receipt"),
    # Pasted into the Vonage dashboard without the slash, they work too: Vonage POSTs, and
    # APPEND_SLASH cannot redirect a POST (the body would be lost; DEBUG raises instead).
    path("webhooks/inbound", webhooks.inbound),
    path("webhooks/receipt", webhooks.receipt),
]
