"""An app-factory Flask site on redis_conn; see example_flask/app.py."""
