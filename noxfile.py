"""The version matrix, lint, types and packaging, as nox sessions.

    nox -l                      # list every session
    nox -t ci                   # what CI runs: lint, types, docs, package, and the suite on the
                                # oldest and newest Python/Django pairs (all databases at once)
    nox                         # everything (``make matrix``)
    nox -s lint types package
    nox -k "tests and 3.10 and sqlite"

The tests sessions need the database servers of their name on loopback (see tests/settings.py);
``mariadb`` sessions build mysqlclient, which needs ``libmariadb-dev`` and ``pkg-config``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import nox

nox.needs_version = ">=2025.5.1"
# uv makes the ~30 virtualenvs of the matrix cheap to create; plain venv is the fallback.
nox.options.default_venv_backend = "uv|venv"
# A Python missing from the machine must fail the run, never quietly shrink the matrix, and
# nox must not fetch interpreters of its own (CI and developers test the ones installed).
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"

ROOT = Path(__file__).parent
PACKAGE = "django_nexmo_conversion"

# Python 3.14: Django 5.2 supports it from 5.2.8 (its release notes), 6.0 and 6.1 from their
# first release, so every series has a 3.14 session (django~=5.2.0 resolves to the newest 5.2).
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]
# Django series -> the oldest Python it supports (Django 6 needs Python 3.12).
DJANGOS = {"5.2": "3.10", "6.0": "3.12", "6.1": "3.12"}
DATABASES = ["sqlite", "postgres", "mariadb"]
# The extras each database's sessions install: psycopg is in "test"; mysqlclient (the "mariadb"
# extra) is built from source against libmariadb-dev.
# insights: the tests check the country and network names its extra brings.
EXTRAS = {
    "sqlite": "test,insights",
    "postgres": "test,insights",
    "mariadb": "test,insights,mariadb",
}

# The translations shipped (django_nexmo_conversion/locale, ``make messages``).
LANGUAGES = ["de", "es", "fr", "pt_BR"]

OLDEST = ("3.10", "5.2")
# Not 3.14 yet: CI's machines (like the developers') have no python3.14 installed, and a
# missing interpreter fails the run (error_on_missing_interpreters). Move to 3.14 with them.
NEWEST = ("3.13", "6.1")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _expose_pyenv_pythons() -> None:
    """Let nox and uv find python3.10 ... python3.13 on a machine that manages them with pyenv.

    pyenv's shims answer only for the versions that are active (``pyenv global`` or
    ``PYENV_VERSION``); any other one fails with "command not found". So, unless the caller
    chose already, activate the newest installed patch release of each supported Python,
    after the currently active version so that ``python3`` keeps its meaning.
    """
    pyenv = shutil.which("pyenv")
    if pyenv is None or "PYENV_VERSION" in os.environ:
        return
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    installed = [p.name for p in root.iterdir() if p.name.replace(".", "").isdigit()]
    chosen = []
    for minor in PYTHONS:
        patches = [v for v in installed if v.startswith(f"{minor}.")]
        if patches:
            chosen.append(max(patches, key=_version_key))
    # The pyenv found on PATH, with fixed arguments: no untrusted input.
    current = subprocess.run(  # noqa: S603
        [pyenv, "version-name"], capture_output=True, text=True, check=False
    ).stdout.strip()
    active = [v for v in current.split(":") if v and v != "system"]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*active, *chosen]))


_expose_pyenv_pythons()


def _test_params() -> list[nox.param]:
    params = []
    for python in PYTHONS:
        for django, oldest_python in DJANGOS.items():
            if _version_key(python) < _version_key(oldest_python):
                continue
            for db in DATABASES:
                tags = [f"django{django}", db]
                params.append(
                    nox.param(python, django, db, id=f"{python}-django{django}-{db}", tags=tags)
                )
    return params


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=[OLDEST[0], NEWEST[0]], tags=["ci"])
def types(session: nox.Session) -> None:
    """mypy --strict with django-stubs: oldest Python with Django 5.2, newest with Django 6.x."""
    session.install("-e", ".[dev]")
    session.run("mypy", PACKAGE)


@nox.session(python=NEWEST[0], tags=["ci"])
def docs(session: nox.Session) -> None:
    """The documentation site (docs/), built as Read the Docs does, warnings as errors."""
    session.install("-e", ".[docs]")
    out = Path(session.create_tmp()) / "html"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", str(out))


@nox.session(python=NEWEST[0], tags=["ci"])
def package(session: nox.Session) -> None:
    """Build, twine check, install the wheel in a clean venv and smoke-test it.

    The wheel (not an editable install) goes into a fresh venv with pip, and the tiny project
    in tests/package_smoke runs against it: migrate, check, makemigrations --check, and one
    conversion reported over HTTP to the bundled sandbox (see verify_install.py there).
    """
    session.install("build[uv]", "twine")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    # Without --sdist/--wheel, build makes the sdist and then the wheel *from the sdist*, so a
    # file missing from the sdist shows up as a broken wheel here rather than for packagers.
    session.run("python", "-m", "build", "--installer=uv", "--outdir", str(dist), str(ROOT))
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    session.run("twine", "check", "--strict", *map(str, wheels + sdists))
    _check_wheel_contents(session, wheels[0])
    _check_sdist_contents(session, sdists[0])

    venv = tmp / "clean-venv"
    shutil.rmtree(venv, ignore_errors=True)
    # A plain venv and pip, as a user would install it: nothing from this checkout on sys.path.
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    session.run(python, "-m", "pip", "install", "--quiet", str(wheels[0]), external=True)
    database = tmp / "smoke.sqlite3"
    database.unlink(missing_ok=True)
    env = {
        "DJANGO_SETTINGS_MODULE": "smoke.settings",
        "SMOKE_DATABASE": str(database),
        "SMOKE_STATIC_ROOT": str(tmp / "static"),
        "PYTHONPATH": "",
    }
    smoke = ROOT / "tests" / "package_smoke"
    with session.chdir(smoke):
        manage = [python, "manage.py"]
        session.run(*manage, "migrate", "--noinput", env=env, external=True)
        session.run(*manage, "check", env=env, external=True)
        session.run(*manage, "makemigrations", "--check", "--dry-run", env=env, external=True)
        session.run(python, "verify_install.py", str(venv), env=env, external=True)


def _package_files() -> set[str]:
    """Every file of the package in the source tree, as it should appear in the wheel."""
    files = set()
    for path in (ROOT / PACKAGE).rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.add(path.relative_to(ROOT).as_posix())
    return files


def _check_wheel_contents(session: nox.Session, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    required = {
        f"{PACKAGE}/py.typed",
        f"{PACKAGE}/migrations/__init__.py",
        f"{PACKAGE}/migrations/0001_initial.py",
        # Compiled translations: gettext reads the .mo, not the .po (tests/test_translations.py).
        *(f"{PACKAGE}/locale/{lang}/LC_MESSAGES/django.mo" for lang in LANGUAGES),
    }
    missing = sorted((_package_files() | required) - names)
    if missing:
        session.error(f"{wheel.name} lacks {missing}")
    strays = sorted(n for n in names if not n.startswith(f"{PACKAGE}/") and ".dist-info/" not in n)
    if strays:
        session.error(f"{wheel.name} ships files outside the package: {strays}")
    kinds = {
        kind: sum(f"/{kind}/" in n for n in names)
        for kind in ("templates", "static", "migrations", "locale")
    }
    session.log(f"{wheel.name}: {len(names)} files; {kinds}; py.typed present")


def _check_sdist_contents(session: nox.Session, sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        top, *_ = archive.getnames()
        prefix = top.split("/")[0]
        names = {name.removeprefix(f"{prefix}/") for name in archive.getnames()}
    required = {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE"} | _package_files()
    missing = sorted(required - names)
    if missing:
        session.error(f"{sdist.name} lacks {missing}")


@nox.session
@nox.parametrize(["python", "django", "db"], _test_params())
def tests(session: nox.Session, django: str, db: str) -> None:
    """The test suite on one database.

    On SQLite: every test, with branch coverage held to fail_under in pyproject.toml. On
    PostgreSQL and MariaDB: the tests that touch a database (tests/conftest.py deselects the
    others, which the SQLite session of the same pair runs), without coverage.
    """
    session.install("-e", f".[{EXTRAS[db]}]", f"django~={django}.0")
    coverage = ["--cov", "--cov-report=term-missing:skip-covered"] if db == "sqlite" else []
    session.run(
        "python",
        "-m",
        "pytest",
        *coverage,
        *session.posargs,
        env={
            "NEXMO_TEST_DB": db,
            "NEXMO_REQUIRE_SERVICES": "1",
            "NEXMO_TEST_DATABASE_TESTS_ONLY": "1",
        },
    )


def _suite_params() -> list[nox.param]:
    return [
        nox.param(python, django, coverage, id=f"{python}-django{django}", tags=["ci"])
        for python, django, coverage in ((*OLDEST, False), (*NEWEST, True))
    ]


# Not in a bare ``nox`` (the tests sessions above run the same tests there), only by name or tag.
@nox.session(default=False)
@nox.parametrize(["python", "django", "coverage"], _suite_params())
def suite(session: nox.Session, django: str, coverage: bool) -> None:
    """The three ``tests`` sessions of a pair in one: tests/run.py runs SQLite (every test)
    and, beside it, PostgreSQL and MariaDB (the tests that touch a database), as ``make test``
    does. CI runs it on the oldest and the newest pair; the newest measures branch coverage
    (``make coverage``), held to fail_under in pyproject.toml."""
    session.install("-e", f".[{EXTRAS['mariadb']}]", f"django~={django}.0")
    measure = ["--coverage"] if coverage else []
    session.run(
        "python",
        "tests/run.py",
        *measure,
        *session.posargs,
        env={"NEXMO_REQUIRE_SERVICES": "1"},
    )
