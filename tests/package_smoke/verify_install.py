"""Prove that the installed wheel works, as a user's project would use it.

Run by the nox ``package`` session with the clean venv's Python, after ``manage.py migrate``:

    python verify_install.py /path/to/clean-venv

It checks that the package comes from that venv (not from a checkout), that its version is
the one in the wheel's metadata, that every template it ships loads, that its static files
(if any) are collected, that its admin pages render (in French too, from the compiled
catalogs), and that a marked conversion reaches
the bundled sandbox over real HTTP with the version in the User-Agent.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

import django_nexmo_conversion
from django_nexmo_conversion.sandbox import Sandbox

MESSAGE_ID = "0A0000001234567B"


def fail(message: str) -> None:
    print(f"verify_install: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check_origin(venv: Path) -> Path:
    package_dir = Path(django_nexmo_conversion.__file__).resolve().parent
    if venv.resolve() not in package_dir.parents:
        fail(f"django_nexmo_conversion was imported from {package_dir}, not from {venv}")
    installed, ours = version("django-nexmo-conversion"), django_nexmo_conversion.__version__
    if installed != ours:
        fail(f"the wheel's metadata says version {installed}, __version__ says {ours}")
    return package_dir


def check_templates(package_dir: Path) -> int:
    from django.template.loader import get_template

    root = package_dir / "templates"
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    for name in names:
        get_template(name)  # raises TemplateDoesNotExist or TemplateSyntaxError
    return len(names)


def check_static(package_dir: Path) -> int:
    from django.conf import settings
    from django.core.management import call_command

    root = package_dir / "static"
    shipped = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    call_command("collectstatic", interactive=False, verbosity=0)
    missing = [str(p) for p in shipped if not (Path(settings.STATIC_ROOT) / p).is_file()]
    if missing:
        fail(f"collectstatic did not collect {missing}")
    return len(shipped)


def check_admin() -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("smoke", "smoke@example.com", "smoke-pw")
    client = Client()
    client.force_login(user)
    for model in ("sentmessage", "conversion"):
        for url in (f"/admin/django_nexmo_conversion/{model}/", "/admin/"):
            response = client.get(url)
            if response.status_code != 200:
                fail(f"GET {url} answered {response.status_code}")


def check_translations() -> None:
    """The wheel's compiled catalogs are found: the admin speaks French when asked."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import translation

    client = Client()
    client.force_login(get_user_model().objects.get(username="smoke"))
    with translation.override("fr"):
        html = client.get("/admin/django_nexmo_conversion/conversion/").content.decode()
    for text in ("Conversions Nexmo", "dernière réponse"):
        if text not in html:
            fail(f"the French admin lacks {text!r}: are the .mo files in the wheel?")


def check_report(sandbox: Sandbox) -> None:
    from django_nexmo_conversion import mark_converted, record_message
    from django_nexmo_conversion.models import Conversion
    from django_nexmo_conversion.testing import wait_for_reports

    message = record_message(MESSAGE_ID)
    conversion = mark_converted(message)  # default DISPATCH: reported right after commit
    if not sandbox.wait_for(1, timeout=10):
        fail("the sandbox received no request within 10 s of mark_converted()")
    reported = sandbox.reported()
    if [r.message_id for r in reported] != [MESSAGE_ID]:
        fail(f"the sandbox accepted {reported!r}, expected one report of {MESSAGE_ID}")
    agent = reported[0].headers.get("user-agent", "")
    expected = f"django-nexmo-conversion/{django_nexmo_conversion.__version__}"
    if expected not in agent:
        fail(f"User-Agent {agent!r} does not name {expected}")
    # The sandbox counts the request before the reporter thread has written Nexmo's answer.
    wait_for_reports(timeout=10)
    status = Conversion.objects.get(pk=conversion.pk).status
    if status != "reported":
        fail(f"the conversion is {status!r} after a 200, expected 'reported'")


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: verify_install.py VENV")
    package_dir = check_origin(Path(sys.argv[1]))
    with Sandbox() as sandbox:
        os.environ["SMOKE_NEXMO_BASE_URL"] = sandbox.base_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smoke.settings")
        import django

        django.setup()
        templates = check_templates(package_dir)
        static = check_static(package_dir)
        check_admin()
        check_translations()
        check_report(sandbox)
    print(
        f"verify_install: OK: django-nexmo-conversion {django_nexmo_conversion.__version__} "
        f"from {package_dir}, Django {django.get_version()}; {templates} templates loaded, "
        f"{static} static files collected, admin rendered (in French too), one conversion "
        f"reported."
    )


if __name__ == "__main__":
    main()
