"""factory-boy factories for the app's models, for your own tests.

Rows are made as the app makes them: uncounted in the hourly rollups until the next sweep
folds them in. A test of the dashboard or the insights calls
``django_nexmo_conversion.rollups.fold()`` first, as the sweep would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone
from factory.declarations import LazyAttribute, LazyFunction, Sequence, SubFactory
from factory.django import DjangoModelFactory

from ..geography import country_of
from ..models import Conversion, ConversionAttempt, Outcome, SentMessage, Status


def _message_id() -> str:
    return uuid.uuid4().hex[:16].upper()


class SentMessageFactory(DjangoModelFactory[SentMessage]):
    class Meta:
        model = SentMessage
        django_get_or_create = ("channel", "message_id")

    message_id = LazyFunction(_message_id)
    channel = "sms"
    recipient = Sequence(lambda n: f"4477009{n:05d}")
    sent_at = LazyFunction(timezone.now)
    country = LazyAttribute(lambda message: country_of(message.recipient))

    @classmethod
    def _create(cls, model_class: type[SentMessage], *args: Any, **kwargs: Any) -> SentMessage:
        message: SentMessage = super()._create(model_class, *args, **kwargs)
        # A part made with parent= belongs to a long SMS: flag its first part, as
        # record_sms_response does, so marking either marks both.
        if message.parent is not None and not message.parent.has_parts:
            SentMessage.objects.filter(pk=message.parent.pk).update(has_parts=True)
            message.parent.has_parts = True
        return message


class ConversionFactory(DjangoModelFactory[Conversion]):
    class Meta:
        model = Conversion

    message = SubFactory(SentMessageFactory)
    delivered = True
    timestamp = LazyFunction(timezone.now)
    status = Status.PENDING
    next_attempt_at = LazyFunction(timezone.now)


class ConversionAttemptFactory(DjangoModelFactory[ConversionAttempt]):
    class Meta:
        model = ConversionAttempt

    conversion = SubFactory(ConversionFactory)
    started_at = LazyFunction(timezone.now)
    duration = LazyFunction(lambda: timedelta(milliseconds=20))
    http_status = 200
    outcome = Outcome.REPORTED
