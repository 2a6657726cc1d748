"""Benchmarks for django-nexmo-conversion (see bench/README.md). Not part of the package."""
