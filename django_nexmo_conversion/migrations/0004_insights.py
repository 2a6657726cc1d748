"""Insights: ``SentMessage.country`` and ``network``, the hourly rollups and the alerts'
state; then the country of every message whose full number is still stored, and the rollups
of the rows already there.

Both data steps go in bounded batches (by primary key), so a large table is never loaded at
once. The rollups are counted here with the historical models (the app's ``stats.rebuild``
uses today's); ``manage.py rebuild_conversion_stats`` recounts them any time later.
"""

from __future__ import annotations

import bisect
from datetime import timezone as dt_timezone
from typing import Any

from django.db import migrations, models
import django.utils.timezone

BATCH = 2000
#: As in ``models.SECONDS_TO_CONVERT_BOUNDS`` at the time of this migration.
BOUNDS = (
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700,
    3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400,
)  # fmt: skip
BUCKETS = [f"ttc_{index}" for index in range(len(BOUNDS) + 1)]
KEY_FIELDS = ("channel", "api_key", "country", "network")


def _default_region() -> str | None:
    from django.conf import settings

    value = (getattr(settings, "NEXMO_CONVERSION", None) or {}).get("DEFAULT_REGION")
    return value.upper() if isinstance(value, str) else None


def fill_countries(apps: Any, schema_editor: Any) -> None:
    from django_nexmo_conversion.geography import country_of

    SentMessage = apps.get_model("django_nexmo_conversion", "SentMessage")
    region = _default_region()
    rows = SentMessage.objects.using(schema_editor.connection.alias)
    last = 0
    while True:
        # Only full numbers: a masked one ("********0123") has lost its country code.
        batch = list(
            rows.filter(pk__gt=last, country="")
            .exclude(recipient="")
            .exclude(recipient__contains="*")
            .order_by("pk")
            .values_list("pk", "recipient")[:BATCH]
        )
        if not batch:
            return
        for pk, recipient in batch:
            country = country_of(recipient, region)
            if country:
                rows.filter(pk=pk).update(country=country)
        last = batch[-1][0]


def count_rollups(apps: Any, schema_editor: Any) -> None:
    SentMessage = apps.get_model("django_nexmo_conversion", "SentMessage")
    ConversionStat = apps.get_model("django_nexmo_conversion", "ConversionStat")
    alias = schema_editor.connection.alias
    totals: dict[tuple[Any, ...], dict[str, int]] = {}
    last = 0
    while True:
        batch = list(
            SentMessage.objects.using(alias)
            .filter(pk__gt=last, parent__isnull=True)
            .order_by("pk")
            .values(
                "pk", "sent_at", *KEY_FIELDS, "delivery_status", "conversion__delivered",
                "conversion__timestamp",
            )[:BATCH]
        )  # fmt: skip
        if not batch:
            break
        for row in batch:
            hour = row["sent_at"].astimezone(dt_timezone.utc)
            hour = hour.replace(minute=0, second=0, microsecond=0)
            counts = totals.setdefault((hour, *(row[f] for f in KEY_FIELDS)), {})
            counts["sent"] = counts.get("sent", 0) + 1
            if row["delivery_status"] == "delivered":
                counts["delivered"] = counts.get("delivered", 0) + 1
            if row["conversion__delivered"]:
                seconds = (row["conversion__timestamp"] - row["sent_at"]).total_seconds()
                for name in ("converted", BUCKETS[bisect.bisect_left(BOUNDS, seconds)]):
                    counts[name] = counts.get(name, 0) + 1
        last = batch[-1]["pk"]
    ConversionStat.objects.using(alias).bulk_create(
        (
            ConversionStat(hour=key[0], **dict(zip(KEY_FIELDS, key[1:], strict=True)), **counts)
            for key, counts in totals.items()
        ),
        batch_size=BATCH,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_nexmo_conversion", "0003_sentmessage_has_parts"),
    ]

    operations = [
        migrations.AddField(
            model_name='sentmessage',
            name='country',
            field=models.CharField(blank=True, default='', max_length=2, verbose_name='country'),
        ),
        migrations.AddField(
            model_name='sentmessage',
            name='network',
            field=models.CharField(blank=True, default='', max_length=6, verbose_name='network'),
        ),
        migrations.CreateModel(
            name='ConversionAlert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('by', models.CharField(max_length=8, verbose_name='by')),
                ('key', models.CharField(max_length=8, verbose_name='key')),
                ('active', models.BooleanField(default=True, verbose_name='active')),
                ('raised_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='raised at')),
                ('sent', models.BigIntegerField(default=0, verbose_name='sent')),
                ('converted', models.BigIntegerField(default=0, verbose_name='converted')),
            ],
            options={
                'verbose_name': 'low-conversion alert',
                'verbose_name_plural': 'low-conversion alerts',
                'constraints': [models.UniqueConstraint(fields=('by', 'key'), name='nexmo_conv_alert_unique')],
            },
        ),
        migrations.CreateModel(
            name='ConversionStat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField(verbose_name='hour')),
                ('channel', models.CharField(choices=[('sms', 'SMS'), ('voice', 'Voice')], max_length=8, verbose_name='channel')),
                ('api_key', models.CharField(blank=True, default='', max_length=64, verbose_name='API key')),
                ('country', models.CharField(blank=True, default='', max_length=2, verbose_name='country')),
                ('network', models.CharField(blank=True, default='', max_length=6, verbose_name='network')),
                ('sent', models.BigIntegerField(default=0, verbose_name='sent')),
                ('delivered', models.BigIntegerField(default=0, verbose_name='delivered')),
                ('converted', models.BigIntegerField(default=0, verbose_name='converted')),
                ('ttc_0', models.BigIntegerField(default=0, editable=False)),
                ('ttc_1', models.BigIntegerField(default=0, editable=False)),
                ('ttc_2', models.BigIntegerField(default=0, editable=False)),
                ('ttc_3', models.BigIntegerField(default=0, editable=False)),
                ('ttc_4', models.BigIntegerField(default=0, editable=False)),
                ('ttc_5', models.BigIntegerField(default=0, editable=False)),
                ('ttc_6', models.BigIntegerField(default=0, editable=False)),
                ('ttc_7', models.BigIntegerField(default=0, editable=False)),
                ('ttc_8', models.BigIntegerField(default=0, editable=False)),
                ('ttc_9', models.BigIntegerField(default=0, editable=False)),
                ('ttc_10', models.BigIntegerField(default=0, editable=False)),
                ('ttc_11', models.BigIntegerField(default=0, editable=False)),
                ('ttc_12', models.BigIntegerField(default=0, editable=False)),
                ('ttc_13', models.BigIntegerField(default=0, editable=False)),
                ('ttc_14', models.BigIntegerField(default=0, editable=False)),
                ('ttc_15', models.BigIntegerField(default=0, editable=False)),
                ('ttc_16', models.BigIntegerField(default=0, editable=False)),
                ('ttc_17', models.BigIntegerField(default=0, editable=False)),
                ('ttc_18', models.BigIntegerField(default=0, editable=False)),
                ('ttc_19', models.BigIntegerField(default=0, editable=False)),
                ('ttc_20', models.BigIntegerField(default=0, editable=False)),
                ('ttc_21', models.BigIntegerField(default=0, editable=False)),
                ('ttc_22', models.BigIntegerField(default=0, editable=False)),
                ('ttc_23', models.BigIntegerField(default=0, editable=False)),
                ('ttc_24', models.BigIntegerField(default=0, editable=False)),
                ('ttc_25', models.BigIntegerField(default=0, editable=False)),
                ('ttc_26', models.BigIntegerField(default=0, editable=False)),
            ],
            options={
                'verbose_name': 'conversion statistic',
                'verbose_name_plural': 'conversion statistics',
                'constraints': [models.UniqueConstraint(fields=('hour', 'channel', 'api_key', 'country', 'network'), name='nexmo_conv_stat_unique')],
            },
        ),
        migrations.RunPython(fill_countries, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(count_rollups, migrations.RunPython.noop, elidable=True),
    ]
