"""Tests for netlab.protocols.http.routes: the table builds the tree it describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.web import resource
from twisted.web.resource import IResource

from helpers import make_hub
from netlab.protocols.http import dashboard, front, routes, status, xmlrpc
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.settings import HttpSettings


def context(events: Any, clock: Clock, hub: Any = None, mail: Any = None,
            **settings: Any) -> HttpContext:
    return HttpContext(settings=HttpSettings(name="http", **settings), events=events,
                       reactor=clock, hub=hub, mail=mail)


def at(root: IResource, path: str) -> Any:
    """The resource put at C{path} (None if nothing is)."""
    node: Any = root
    for name in path.encode().split(b"/")[1:]:
        node = node.children.get(name)
        if node is None:
            return None
    return node


def test_every_route_answers_its_methods(events: Any, clock: Clock, tmp_path: Path) -> None:
    """The methods column says what each resource answers (HEAD and OPTIONS aside)."""
    # The mail store is looked up per request: a lookup that finds none does here.
    root = routes.build_root(context(events, clock, make_hub(events, clock),
                                     mail=lambda: None, static_dir=str(tmp_path)))
    for route in routes.ROUTES:
        found = at(root, route.path)
        assert found is not None, route.path
        allowed = getattr(found, "allowedMethods", None) or resource._computeAllowedMethods(found)
        methods = {m.decode() for m in allowed} - {"HEAD", "OPTIONS"}
        assert methods == set(route.methods.split()), route.path


def test_one_resource_for_two_names(events: Any, clock: Clock) -> None:
    """A builder named on two paths serves both with one resource, children and all."""
    root = routes.build_root(context(events, clock))
    assert at(root, "/time") is at(root, "/time.html")
    assert isinstance(at(root, "/dashboard/stream"), dashboard.DashboardStream)


def test_front_door(events: Any, clock: Clock) -> None:
    """/ is the course's front door, answering GET, HEAD, POST and OPTIONS; the dashboard
    itself (with its stream and assets) stays at /dashboard."""
    root = routes.build_root(context(events, clock))
    (route,) = [route for route in routes.ROUTES if route.path == "/"]
    assert route.methods == "GET POST"
    found = at(root, "/")
    assert isinstance(found, front.FrontPage)
    assert set(resource._computeAllowedMethods(found)) == {b"GET", b"HEAD", b"POST"}
    assert isinstance(found.rpc, xmlrpc.LabXMLRPC)
    assert isinstance(at(root, "/dashboard"), dashboard.DashboardPage)


def test_optional_routes_left_out(events: Any, clock: Clock) -> None:
    """No static_dir, no /static; no chat hub, no /chat and no /ws/chat; /ws still 404s."""
    root = routes.build_root(context(events, clock))
    assert at(root, "/static") is None
    assert at(root, "/chat") is None
    assert at(root, "/ws/chat") is None
    assert at(root, "/ws/echo") is not None
    assert isinstance(at(root, "/ws"), routes.Root)
    # Building the tree counts nothing: a service shows once it is used.
    assert events.counters == {}


def test_routes_of_a_module(events: Any, clock: Clock) -> None:
    """of() picks the routes whose resources a module defines."""
    paths = [route.path for route in routes.of(status)]
    assert paths[:2] == ["/status", "/delay"]
    assert all(route.make.__module__ == status.__name__ for route in routes.of(status))
