from django.apps import AppConfig


class SmsDemoConfig(AppConfig):
    name = "sms_demo"
    verbose_name = "SMS demo"
