from django.urls import path

from . import views

app_name = "sms_demo"

urlpatterns = [
    path("", views.home, name="home"),
    path("send/", views.send, name="send"),
    path("reply/", views.reply, name="reply"),
    path("messages/<int:pk>/converted/", views.converted, name="converted"),
    path("messages/<int:pk>/not-delivered/", views.not_delivered, name="not_delivered"),
    path("messages/<int:pk>/retry/", views.retry, name="retry"),
]
