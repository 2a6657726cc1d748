"""Template tags: ``{% load nexmo_conversion %}`` (see ``nexmo_conversion``)."""
