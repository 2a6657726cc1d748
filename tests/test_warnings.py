"""The test run turns Django's deprecation warnings into errors (pyproject filterwarnings).

A warning is attributed to the module that called the deprecated API, so the filters must
match Django's warning classes by category, wherever they are raised from: our package, a
test, or Django itself.
"""

from __future__ import annotations

import warnings

import pytest
from django.utils import deprecation

DJANGO_DEPRECATIONS = [
    deprecation.RemovedInNextVersionWarning,
    deprecation.RemovedAfterNextVersionWarning,
]
MODULES = ["django_nexmo_conversion.marking", "tests.testapp.models", "django.db.models.base"]


def _warn_from(module: str, category: type[Warning]) -> None:
    warnings.warn_explicit(
        "this API is deprecated",
        category,
        filename=module.replace(".", "/") + ".py",
        lineno=1,
        module=module,
    )


@pytest.mark.parametrize("category", DJANGO_DEPRECATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("module", MODULES)
def test_django_deprecation_is_an_error_from_any_module(
    category: type[Warning], module: str
) -> None:
    with pytest.raises(category, match="this API is deprecated"):
        _warn_from(module, category)


@pytest.mark.parametrize("category", DJANGO_DEPRECATIONS, ids=lambda c: c.__name__)
def test_django_deprecation_raised_by_warn_is_an_error(category: type[Warning]) -> None:
    # The usual call in Django: warnings.warn(..., stacklevel=2) blames the caller, i.e. us.
    def deprecated_api() -> None:
        warnings.warn("deprecated_api() is deprecated", category, stacklevel=2)

    with pytest.raises(category):
        deprecated_api()


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_python_deprecation_in_the_package_is_an_error(category: type[Warning]) -> None:
    with pytest.raises(category):
        _warn_from("django_nexmo_conversion.transport.client", category)


def test_the_filters_are_not_a_blanket_error() -> None:
    # A third-party library's own deprecation stays a warning: the run fails for Django's
    # deprecations and ours, not for every library's housekeeping.
    with pytest.warns(DeprecationWarning, match="library housekeeping"):
        warnings.warn_explicit(
            "library housekeeping", DeprecationWarning, "requests/api.py", 1, module="requests"
        )
