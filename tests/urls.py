from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("nexmo/", include("django_nexmo_conversion.urls")),
    path("mark/<str:message_id>/", views.mark),
    path("amark/<str:message_id>/", views.amark),
    path("verify/", views.verify),
]
