"""django-redis's own test suite, run against redis_conn's cache backend.

:mod:`fetch` unpacks the tests of the installed django-redis version from its sdist (never
copied into this repository) and installs the optional packages its serializers and
compressors need (its ``msgpack``, ``lz4`` and ``pyzstd`` extras). :mod:`plugin` takes the place
of django-redis's ``conftest.py`` (which needs pytest-xdist and a server on port 6379), and
:mod:`settings` is django-redis's settings files with only BACKEND and LOCATION changed.
``tests/test_django/test_django_cache_django_redis_suite.py`` runs it on a real redis-server.
"""
