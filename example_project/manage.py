#!/usr/bin/env python
"""Django's command-line utility for the demo site (``make demo`` runs ``demo.py`` instead)."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    # Works from a plain checkout too, before `pip install -e .`.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
