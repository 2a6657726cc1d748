from django.db import models


class Order(models.Model):
    """A model that sends an SMS when created; a target for SentMessage in tests."""

    sms_message_id = models.CharField(max_length=64, blank=True, default="")
    paid = models.BooleanField(default=False)
