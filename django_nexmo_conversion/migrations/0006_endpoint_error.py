"""An endpoint error (403/404/405/406/415, a redirect) is an outcome of its own.

It was stored as ``account_error`` and told apart again by its HTTP status wherever it was
read; the attempts stored so are re-tagged from that status, once, here. Reversible: the
backward step files them as account errors again.
"""

from typing import Any

from django.db import migrations, models
from django.db.models import Q

#: The statuses the outcome table (``transport.answers``) files as endpoint errors, frozen
#: as they were when this migration was written.
ENDPOINT_STATUSES = Q(http_status__in=[403, 404, 405, 406, 415]) | Q(
    http_status__gte=300, http_status__lt=400
)


def retag(apps: Any, schema_editor: Any) -> None:
    attempt = apps.get_model("django_nexmo_conversion", "ConversionAttempt")
    attempts = attempt.objects.using(schema_editor.connection.alias)
    attempts.filter(ENDPOINT_STATUSES, outcome="account_error").update(outcome="endpoint_error")


def untag(apps: Any, schema_editor: Any) -> None:
    attempt = apps.get_model("django_nexmo_conversion", "ConversionAttempt")
    attempts = attempt.objects.using(schema_editor.connection.alias)
    attempts.filter(outcome="endpoint_error").update(outcome="account_error")


class Migration(migrations.Migration):
    dependencies = [("django_nexmo_conversion", "0005_counted")]

    operations = [
        migrations.AlterField(
            model_name="conversionattempt",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("reported", "Reported"),
                    ("account_error", "Account error"),
                    ("endpoint_error", "Endpoint error"),
                    ("rejected", "Rejected (parameters)"),
                    ("transient", "Transient error"),
                ],
                max_length=16,
                verbose_name="outcome",
            ),
        ),
        migrations.RunPython(retag, untag, elidable=True),
    ]
