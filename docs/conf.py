"""Sphinx configuration of the redis_conn documentation.

Build (CI runs exactly this; warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST). Python examples in them are executed by tests/test_docs.py;
see docs/README.md for how a page marks its examples.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The example apps are literalincluded and their modules autodoc'd from the checkout.
sys.path.insert(0, str(ROOT))

# -- Django: the API reference imports redis_conn.django, which needs configured settings --
import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["redis_conn.django"],
        REDIS_CONNECTIONS={"default": {"FAKE": True}},
        USE_TZ=True,
    )
    django.setup()

# -- project ---------------------------------------------------------------------------------
project = "redis_conn"
author = "the redis_conn authors"
copyright = "the redis_conn authors"
release = _version("redis_conn")
version = ".".join(release.split(".")[:2])

# -- general ---------------------------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
# "[Settings](settings.md#max-connections)": anchors for headings down to ###.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}


# -- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"redis_conn {release}"
html_static_path = ["_static"]
