"""The translations in django_nexmo_conversion/locale: complete, compiling, shipped compiled,
and used by the admin.

The catalogs are checked against what ``makemessages`` extracts from the code *now*, so a new
or changed string without its translations fails here (run ``make messages``, translate the
empty and fuzzy entries, ``make messages`` again). gettext's tools (``apt-get install gettext``)
are needed, as for ``makemessages`` itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import ROOT, django_admin

PACKAGE = ROOT / "django_nexmo_conversion"
LANGUAGES = ["de", "es", "fr", "pt_BR"]
DASHBOARD = "/admin/django_nexmo_conversion/conversion/dashboard/"


def gettext_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install gettext (as .ci/run does)")
    return path


def msgfmt(po: Path, mo: Path) -> str:
    """Compile ``po`` with every check msgfmt has (placeholders included); its statistics."""
    done = subprocess.run(
        [gettext_tool("msgfmt"), "--check", "--statistics", "-o", str(mo), str(po)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.strip()


def test_the_catalogs_cover_these_languages():
    found = sorted(p.name for p in (PACKAGE / "locale").iterdir() if p.is_dir())
    assert found == LANGUAGES


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package whose catalogs ``makemessages`` has just merged with the code."""
    for tool in ("xgettext", "msgmerge", "msguniq"):
        gettext_tool(tool)
    copy = tmp_path_factory.mktemp("messages") / "django_nexmo_conversion"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    languages = [arg for lang in LANGUAGES for arg in ("-l", lang)]
    subprocess.run(
        django_admin("makemessages", *languages, "--no-obsolete"),
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        check=True,
    )
    return copy


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_in_the_code_is_translated(extracted, tmp_path, language):
    # msgmerge leaves a new string untranslated and a changed one fuzzy: either shows here.
    po = extracted / "locale" / language / "LC_MESSAGES" / "django.po"
    statistics = msgfmt(po, tmp_path / "django.mo")
    assert re.fullmatch(r"\d+ translated messages\.", statistics), (
        f"{language}: {statistics} — run `make messages` and translate the new strings"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_catalog_is_complete_and_compiles(tmp_path, language):
    po = PACKAGE / "locale" / language / "LC_MESSAGES" / "django.po"
    assert "#, fuzzy" not in po.read_text(encoding="utf-8")
    assert re.fullmatch(r"\d+ translated messages\.", msgfmt(po, tmp_path / "django.mo"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_compiled_from_the_committed_po(tmp_path, language):
    # Compared decompiled, so that the gettext version that wrote each file does not matter.
    messages = PACKAGE / "locale" / language / "LC_MESSAGES"
    fresh = tmp_path / "django.mo"
    msgfmt(messages / "django.po", fresh)
    msgunfmt = gettext_tool("msgunfmt")

    def decompiled(mo: Path) -> str:
        return subprocess.run(
            [msgunfmt, str(mo)], capture_output=True, text=True, check=True
        ).stdout

    assert decompiled(messages / "django.mo") == decompiled(fresh), "run `make messages`"


@pytest.fixture
def translated_site(settings):
    # As a site serving several languages would: the browser's Accept-Language picks one.
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:2],
        "django.middleware.locale.LocaleMiddleware",
        *settings.MIDDLEWARE[2:],
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "texts"),
    [
        ("fr", ["Tableau de bord des conversions", "Taux de conversion par jour", "Accueil"]),
        ("de", ["Konversions-Dashboard", "Häufigste Fehlerursachen"]),
        ("es", ["Panel de conversiones", "Periodos recientes"]),
        ("pt-br", ["Painel de conversões", "Principais motivos de falha"]),
    ],
)
def test_the_dashboard_renders_in_the_browsers_language(
    translated_site, admin_client, accept, texts
):
    html = admin_client.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE=accept).content.decode()
    for text in texts:
        assert text in html
    assert "Top failure reasons" not in html


@pytest.mark.django_db
def test_the_conversion_list_renders_in_french(translated_site, admin_client):
    html = admin_client.get(
        "/admin/django_nexmo_conversion/conversion/", HTTP_ACCEPT_LANGUAGE="fr"
    ).content.decode()
    # The app's filters and actions, beside Django's own French admin.
    for text in ["dernière réponse", "date de marquage", "Réessayer maintenant", "Déconnexion"]:
        assert text in html
    assert "last answer" not in html


@pytest.mark.django_db
def test_english_stays_english(translated_site, admin_client):
    html = admin_client.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Top failure reasons" in html
    assert "Principales causes d'échec" not in html
