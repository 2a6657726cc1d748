"""Optional integrations, each behind its extra: ``health_check`` (``[health]``) and
``prometheus`` (``[prometheus]``). Nothing in the app imports them."""
