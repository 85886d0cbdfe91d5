"""Placeholder: resources for this group are installed here (see site.py)."""

from __future__ import annotations

from twisted.web.resource import Resource

from netlab.protocols.http.site import HttpContext


def install(root: Resource, context: HttpContext) -> None:
    """Put this group's resources on C{root}."""
