"""A small Django site on redis_conn: ``python example_django/manage.py runserver``."""
