from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class NexmoConversionConfig(AppConfig):
    name = "django_nexmo_conversion"
    label = "django_nexmo_conversion"
    verbose_name = _("Nexmo conversions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import check_settings
        from .dispatch import connect_serving
        from .rollups import by_status

        checks.register(check_settings, checks.Tags.compatibility)
        # Deletions by any path (proxies included) keep the counts exact.
        by_status.connect_deletions()
        # A web or worker process sweeps from its first request (or once its worker is ready).
        connect_serving()
