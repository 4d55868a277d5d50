"""Sphinx configuration of the flask-email-cancel documentation."""

from __future__ import annotations

import flask_email_cancel

project = "flask-email-cancel"
author = "flask-email-cancel developers"
copyright = "flask-email-cancel developers"
release = flask_email_cancel.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",  # the benchmark results are Markdown, written by the suite
]

exclude_patterns = ["_build", "recipes"]
default_role = "code"

autodoc_member_order = "bysource"
autodoc_typehints = "both"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = f"flask-email-cancel {release}"
