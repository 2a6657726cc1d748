"""The single source of the package version (read by hatch and by the User-Agent)."""

__version__ = "0.1.0"
