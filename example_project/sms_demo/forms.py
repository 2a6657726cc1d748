from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .sandbox_link import ANSWERS


class SendForm(forms.Form):
    to = forms.CharField(
        label=_("Phone number"),
        max_length=32,
        initial="447700900123",
        help_text=_("Digits with the country code, e.g. 447700900123. Nothing is really sent."),
    )
    sandbox_answer = forms.ChoiceField(
        label=_("The sandbox answers this message's conversion report with"),
        choices=[(key, label) for key, (label, _items) in ANSWERS.items()],
        initial="ok",
        required=False,
    )

    def clean_sandbox_answer(self) -> str:
        return self.cleaned_data["sandbox_answer"] or "ok"


class ReplyForm(forms.Form):
    """A reply the sandbox posts to the inbound webhook, as Vonage would."""

    msisdn = forms.CharField(
        label=_("Reply from"),
        max_length=32,
        initial="447700900123",
        help_text=_("The number a code was sent to."),
    )
    text = forms.CharField(label=_("Text"), max_length=160, initial="YES")
