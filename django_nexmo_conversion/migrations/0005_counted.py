"""The rollups are counted by the sweeps (``stats.fold``) instead of the write path.

Every row that exists now was counted when it was written (or by 0004), so it is added as
counted; new rows start uncounted.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_nexmo_conversion", "0004_insights"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversion",
            name="counted",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AlterField(
            model_name="conversion",
            name="counted",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddField(
            model_name="sentmessage",
            name="counted",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AlterField(
            model_name="sentmessage",
            name="counted",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddIndex(
            model_name="conversion",
            index=models.Index(fields=["counted"], name="nexmo_conv_counted_idx"),
        ),
        migrations.AddIndex(
            model_name="sentmessage",
            index=models.Index(fields=["counted"], name="nexmo_conv_msg_counted_idx"),
        ),
    ]
