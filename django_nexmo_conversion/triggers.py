"""Model triggers: "when this model is saved and this holds, that message converted".

Declare them in your ``AppConfig.ready()``::

    from django_nexmo_conversion import convert_when

    convert_when(Order, message="sms_message_id", when=lambda order, created: order.paid)

The receiver runs in ``post_save``, inside the transaction that saved the instance, so
the conversion row commits or rolls back with it: a rolled-back save reports nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.db.models.signals import post_save

from .exceptions import ConversionInputError
from .marking import mark_converted
from .models import Channel, Conversion, SentMessage

logger = logging.getLogger("django_nexmo_conversion")

MessageGetter = Callable[[Any], "SentMessage | str | None"]
Condition = Callable[[Any, bool], bool]


@dataclass(eq=False)
class Trigger:
    """A connected trigger; :meth:`disconnect` removes it (tests, feature flags)."""

    model: type[models.Model]
    message: MessageGetter
    when: Condition | None
    delivered: bool
    channel: str
    dispatch_uid: str | None

    def __call__(self, sender: type[models.Model], instance: Any, created: bool, **kw: Any) -> None:
        if kw.get("raw"):  # loaddata: fixtures describe the past, they convert nothing
            return
        if self.when is not None and not self.when(instance, created):
            return
        self.fire(instance)

    def fire(self, instance: Any) -> Conversion | None:
        """Mark the message of ``instance`` converted (the condition is not checked)."""
        message = self.message(instance)
        if message is None or message == "":
            return None
        try:
            # A savepoint: bad data in one row must not break the caller's transaction.
            with transaction.atomic():
                return mark_converted(message, delivered=self.delivered, channel=self.channel)
        except ConversionInputError as exc:
            # The save itself is fine; the conversion cannot be marked. Do not fail the
            # user's save (an order must not fail to be paid because of a report), say why.
            logger.error(
                "convert_when(%s): %s #%s not marked: %s",
                self.model._meta.label,
                self.model._meta.label,
                instance.pk,
                exc,
            )
            return None

    def disconnect(self) -> bool:
        return bool(post_save.disconnect(self, sender=self.model, dispatch_uid=self.dispatch_uid))


def _getter(model: type[models.Model], message: str | MessageGetter) -> MessageGetter:
    if callable(message):
        return message
    if isinstance(message, str):
        try:
            model._meta.get_field(message)
        except FieldDoesNotExist:
            raise ConversionInputError(
                f"convert_when: {model._meta.label} has no field {message!r}."
            ) from None
        name = message

        def by_field(instance: Any) -> SentMessage | str | None:
            value = getattr(instance, name)
            return value if isinstance(value, SentMessage) or value is None else str(value)

        return by_field
    raise ConversionInputError(
        "convert_when: message must be a field name or a callable taking the instance, "
        f"got {type(message).__name__}."
    )


def convert_when(
    model: type[models.Model],
    *,
    message: str | MessageGetter,
    when: Condition | None = None,
    delivered: bool = True,
    channel: str = Channel.SMS,
    dispatch_uid: str | None = None,
) -> Trigger:
    """After each save of ``model`` for which ``when(instance, created)`` is true (always, if
    ``when`` is None), mark ``message`` converted, in the same transaction.

    ``message`` is a field name (a message id string or a ``SentMessage`` foreign key) or a
    callable returning a ``SentMessage``, a message id, or ``None``/``""`` (nothing to mark).
    Marking is idempotent, so a condition that stays true on later saves does no harm.
    Pass ``dispatch_uid`` when the declaring code may run more than once.
    """
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ConversionInputError(f"convert_when: {model!r} is not a model class.")
    if when is not None and not callable(when):
        raise ConversionInputError("convert_when: when must be a callable (instance, created).")
    if not isinstance(delivered, bool):
        raise ConversionInputError(
            f"convert_when: delivered must be True or False, not {delivered!r}."
        )
    if channel not in Channel.values:
        raise ConversionInputError(
            f"convert_when: channel must be one of {', '.join(Channel.values)}, got {channel!r}."
        )
    trigger = Trigger(model, _getter(model, message), when, delivered, channel, dispatch_uid)
    post_save.connect(trigger, sender=model, weak=False, dispatch_uid=dispatch_uid)
    return trigger
