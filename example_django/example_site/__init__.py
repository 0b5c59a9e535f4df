"""The example site's Django project (settings, URLs, views)."""
