"""Django's own cache test suite, run against redis_conn's cache backend.

This directory is linked into the ``tests/`` directory of the Django source distribution of the
installed Django version (fetched by :mod:`fetch`, never copied into this repository) and run
there as a test app by Django's own ``runtests.py``, beside Django's ``RedisCacheTests``, on a
real redis-server that ``tests/test_django/test_django_cache_suite.py`` starts.
"""
