"""Marking from model saves (``convert_when``), a plain signal receiver and a view: the
cookbook recipes, each end to end against the sandbox with ``DISPATCH="on_commit"``.

These tests really commit (``transaction=True``): what is proven is that a committed save
reaches the sandbox and a rolled-back one sends nothing and leaves no row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from django_nexmo_conversion import convert_when, mark_converted, record_message
from django_nexmo_conversion.exceptions import ConversionInputError
from django_nexmo_conversion.models import Conversion
from django_nexmo_conversion.sandbox import Sandbox
from django_nexmo_conversion.triggers import Trigger
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paid_trigger() -> Iterator[Trigger]:
    trigger = convert_when(
        Order, message=lambda order: order.sms_message_id, when=lambda order, created: order.paid
    )
    yield trigger
    trigger.disconnect()


def reported_ids(sandbox: Sandbox) -> list[str]:
    return [r.form["message-id"] for r in sandbox.reported()]


# --- convert_when ---------------------------------------------------------------------------


def test_a_save_that_meets_the_condition_is_reported_after_commit(
    on_commit: Sandbox, paid_trigger: Trigger
) -> None:
    record_message("0A000000CCCC0001")
    order = Order.objects.create(sms_message_id="0A000000CCCC0001")
    assert not Conversion.objects.exists()  # not paid yet

    with transaction.atomic():
        order.paid = True
        order.save()
        assert Conversion.objects.filter(message__message_id="0A000000CCCC0001").exists()
        assert on_commit.requests == []  # nothing leaves before the commit
    assert reported_ids(on_commit) == ["0A000000CCCC0001"]


def test_a_rolled_back_save_reports_nothing(on_commit: Sandbox, paid_trigger: Trigger) -> None:
    record_message("0A000000CCCC0002")
    order = Order.objects.create(sms_message_id="0A000000CCCC0002")

    seen_inside: list[bool] = []

    class PaymentFailed(Exception):
        pass

    def pay() -> None:
        with transaction.atomic():
            order.paid = True
            order.save()
            seen_inside.append(Conversion.objects.exists())
            raise PaymentFailed

    with pytest.raises(PaymentFailed):
        pay()
    assert seen_inside == [True]  # the trigger did mark, inside the transaction
    assert not Conversion.objects.exists()
    assert on_commit.requests == []


def test_saving_again_does_not_report_again(on_commit: Sandbox, paid_trigger: Trigger) -> None:
    order = Order.objects.create(sms_message_id="0A000000CCCC0003", paid=True)
    order.save()
    order.save()
    assert Conversion.objects.count() == 1
    assert reported_ids(on_commit) == ["0A000000CCCC0003"]


def test_a_field_name_and_created(on_commit: Sandbox) -> None:
    trigger = convert_when(Order, message="sms_message_id", when=lambda o, created: created)
    try:
        Order.objects.create(sms_message_id="0A000000CCCC0004")
        Order.objects.create()  # no message id: nothing to mark
    finally:
        trigger.disconnect()
    Order.objects.create(sms_message_id="0A000000CCCC0005")  # disconnected
    assert reported_ids(on_commit) == ["0A000000CCCC0004"]


def test_delivered_false_and_voice(on_commit: Sandbox) -> None:
    trigger = convert_when(
        Order,
        message="sms_message_id",
        when=lambda order, created: not order.paid,
        delivered=False,
        channel="voice",
    )
    try:
        Order.objects.create(sms_message_id="d2a9a0e6-0d7b-4b63-a6b1-64b1b0c7e0a1")
    finally:
        trigger.disconnect()
    [request] = on_commit.reported()
    assert (request.channel, request.form["delivered"]) == ("voice", "false")


def test_bad_data_does_not_break_the_save(
    on_commit: Sandbox, paid_trigger: Trigger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="django_nexmo_conversion"):
        order = Order.objects.create(sms_message_id="not a message id", paid=True)
    assert Order.objects.filter(pk=order.pk, paid=True).exists()
    assert not Conversion.objects.exists()
    assert "testapp.Order #" in caplog.text
    assert "whitespace" in caplog.text
    assert on_commit.requests == []


def test_loaddata_converts_nothing(on_commit: Sandbox, paid_trigger: Trigger) -> None:
    order = Order(sms_message_id="0A000000CCCC0006", paid=True)
    post_save.send(sender=Order, instance=order, created=True, raw=True)
    assert not Conversion.objects.exists()


def test_dispatch_uid_connects_once(on_commit: Sandbox) -> None:
    calls: list[int] = []
    triggers = [
        convert_when(
            Order,
            message="sms_message_id",
            when=lambda order, created: bool(calls.append(order.pk)),
            dispatch_uid="paid-orders",
        )
        for _ in range(3)
    ]
    try:
        order = Order.objects.create()
    finally:
        triggers[0].disconnect()
    assert calls == [order.pk]
    Order.objects.create()
    assert calls == [order.pk]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"model": object, "message": "sms_message_id"}, "not a model class"),
        ({"model": Order, "message": "no_such_field"}, "has no field 'no_such_field'"),
        ({"model": Order, "message": 42}, "field name or a callable"),
        ({"model": Order, "message": "sms_message_id", "when": True}, "when must be a callable"),
        ({"model": Order, "message": "sms_message_id", "channel": "fax"}, "channel"),
        ({"model": Order, "message": "sms_message_id", "delivered": "yes"}, "delivered"),
    ],
)
def test_declaration_errors_are_clear(args: dict[str, Any], error: str) -> None:
    model = args.pop("model")
    with pytest.raises(ConversionInputError, match=error):
        convert_when(model, **args)
    Order.objects.create(sms_message_id="0A000000CCCC0009", paid=True)
    assert not Conversion.objects.exists()  # nothing was connected


# --- recipe: a plain signal receiver --------------------------------------------------------


def test_recipe_signal_receiver(on_commit: Sandbox) -> None:
    @receiver(post_save, sender=Order, dispatch_uid="recipe-order-paid")
    def order_paid(sender: type[Order], instance: Order, created: bool, **kwargs: Any) -> None:
        if instance.paid and instance.sms_message_id:
            mark_converted(instance.sms_message_id)

    try:
        Order.objects.create(sms_message_id="0A000000CCCC0007", paid=True)
    finally:
        post_save.disconnect(sender=Order, dispatch_uid="recipe-order-paid")
    assert reported_ids(on_commit) == ["0A000000CCCC0007"]


# --- recipe: a view -------------------------------------------------------------------------


def verify_code(request: HttpRequest) -> HttpResponse:
    """A 2FA check: the code we sent by SMS came back, so that SMS converted."""
    if request.POST.get("code") != "123456":
        return HttpResponse("wrong code", status=400)
    mark_converted(request.POST["message_id"])
    return HttpResponse("welcome")


urlpatterns = [path("verify/", verify_code)]


@pytest.mark.urls("tests.test_triggers")
def test_recipe_view(on_commit: Sandbox) -> None:
    record_message("0A000000CCCC0008")
    client = Client()
    wrong = client.post("/verify/", {"code": "000000", "message_id": "0A000000CCCC0008"})
    assert wrong.status_code == 400
    assert on_commit.requests == []
    response = client.post("/verify/", {"code": "123456", "message_id": "0A000000CCCC0008"})
    assert response.status_code == 200
    assert reported_ids(on_commit) == ["0A000000CCCC0008"]
