#!/usr/bin/env python
"""manage.py of the smoke project, which the nox ``package`` session runs against the wheel."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smoke.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
