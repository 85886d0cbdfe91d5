"""
Listen strings: Twisted's endpoint strings for stream services, and
netlab's own C{udp:PORT[:interface=ADDR]} and C{systemd-udp:name=NAME} for
datagram services (Twisted has no endpoint string for UDP).

Stream strings are checked by Twisted's own parser
(C{endpoints.serverFromString}); the port and interface are looked at first
only so that the commonest mistakes get a message that says what is wrong.
C{haproxy:} before any of them (Twisted's syntax: C{haproxy:tcp:7007}) means
every connection starts with a PROXY protocol header naming the client (see
L{netlab.core.listen.ProxyHeaderFactory}).  Nothing here listens.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from netlab.core._twisted import endpoint_tokens
from netlab.core.tomltext import toml_value

STREAM_TYPES = ("tcp", "tcp6", "ssl", "tls", "unix", "systemd")
DATAGRAM_TYPES = ("udp", "systemd-udp")
PROXIED = "haproxy:"


def unproxied(description: str) -> tuple[str, bool]:
    """
    The endpoint C{description} listens on, without its C{haproxy:} prefix,
    and whether it had one (its connections start with a PROXY header).
    """
    if description.startswith(PROXIED):
        return description[len(PROXIED):], True
    return description, False


# The parameters of Twisted's ssl: server strings that name files.
TLS_FILE_PARAMETERS = ("privateKey", "certKey", "extraCertChain", "caCertsDir", "dhParameters")
_TLS_FILE = re.compile(
    r"(?<=:)(?P<name>" + "|".join(TLS_FILE_PARAMETERS) + r")=(?P<value>(?:\\.|[^:\\])*)"
)


def beside(description: str, folder: Path) -> str:
    """
    C{description} with the relative files of an C{ssl:}/C{tls:} string
    (C{privateKey=tls/key.pem}) taken from C{folder}, the config file's
    folder, as every path in the config is: Twisted would read them from
    wherever the daemon was started.  Other strings are returned as they are.
    """
    inner, _ = unproxied(description)
    if inner.split(":", 1)[0] not in ("ssl", "tls"):
        return description

    def absolute(match: re.Match[str]) -> str:
        value = re.sub(r"\\(.)", r"\1", match["value"])
        if not value or Path(value).is_absolute():
            return match[0]
        path = str(folder / value)
        return match["name"] + "=" + path.replace("\\", "\\\\").replace(":", "\\:")

    return _TLS_FILE.sub(absolute, description)


def split_endpoint(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint string into its type, positional and keyword arguments
    with Twisted's own tokenizer (backslash escapes and all), so that
    netlab's C{udp:} strings read exactly like Twisted's stream ones.
    """
    args, kwargs = endpoint_tokens(description)
    return args[0], args[1:], kwargs


def endpoint_kind(description: str) -> str:
    """C{"datagram"} for C{udp:} strings, C{"stream"} for everything else."""
    return "datagram" if description.split(":", 1)[0] in DATAGRAM_TYPES else "stream"


_COLON_HINT = (
    "too many ':'-separated parts; write each colon of an IPv6 interface "
    "as \\: (interface=\\:\\:1)"
)


def _check_port(value: str) -> str | None:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        return f"port {toml_value(value)} is not a number from 0 to 65535"
    return None


def _check_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"interface {toml_value(value)} is not an IP address"
    return None


def parse_systemd_udp(description: str, environment: bool = True) -> int | None:
    """
    Parse C{systemd-udp:name=NAME} (or C{index=N}): a datagram socket systemd
    passed in.  With C{environment}, the file descriptor it names; else None.

    @raise ValueError: with the reason.
    """
    kind, args, kwargs = split_endpoint(description)
    if kind != "systemd-udp" or args or set(kwargs) - {"name", "index"} or len(kwargs) != 1:
        raise ValueError("systemd-udp needs exactly one of name=NAME or index=N")
    if "index" in kwargs and not kwargs["index"].isdigit():
        raise ValueError(f"index {toml_value(kwargs['index'])} is not a number")
    if not environment:
        return None
    # Twisted reads $LISTEN_FDS once (and removes it, with $LISTEN_PID, from
    # the environment) for its systemd: endpoint parser; the datagram
    # sockets are in that same inventory.
    from netlab.core._twisted import systemd_inherited_fds

    fds = systemd_inherited_fds()
    if "name" in kwargs:
        named = fds.inheritedNamedDescriptors()
        if kwargs["name"] not in named:
            raise ValueError(f"no inherited socket named {toml_value(kwargs['name'])}")
        return named[kwargs["name"]]
    inherited = fds.inheritedDescriptors()
    if int(kwargs["index"]) >= len(inherited):
        raise ValueError("no inherited socket at that index")
    return inherited[int(kwargs["index"])]


def parse_udp(description: str) -> tuple[int, str]:
    """
    Parse C{udp:PORT[:interface=ADDR]} into a port and an interface.

    @raise ValueError: with the reason, if the string is not of that form.
    """
    kind, args, kwargs = split_endpoint(description)
    if kind != "udp":
        raise ValueError(f"{toml_value(kind)} is not a datagram endpoint type (use udp:PORT)")
    unknown = set(kwargs) - {"port", "interface"}
    if unknown:
        raise ValueError(f"unknown udp option {toml_value(sorted(unknown)[0])}")
    ports = args + ([kwargs["port"]] if "port" in kwargs else [])
    if len(ports) > 1 and "interface" in kwargs:
        raise ValueError(_COLON_HINT)
    if len(ports) != 1:
        raise ValueError("udp needs exactly one port: udp:PORT[:interface=ADDR]")
    problem = _check_port(ports[0])
    interface = kwargs.get("interface", "")
    if problem is None and interface:
        problem = _check_address(interface)
    if problem:
        raise ValueError(problem)
    return int(ports[0]), interface


def check_stream(description: str, environment: bool = True) -> None:
    """
    Check a stream endpoint string the way Twisted will parse it.

    @param environment: also resolve what depends on the environment
        (C{systemd:} names in C{$LISTEN_FDNAMES}, certificate files).
    @raise ValueError: with the reason.
    """
    description, proxied = unproxied(description)
    kind, args, kwargs = split_endpoint(description)
    if kind not in STREAM_TYPES:
        if proxied:
            raise ValueError(
                f"haproxy: wraps a stream endpoint ({', '.join(STREAM_TYPES)}), "
                f"as in haproxy:tcp:PORT, not {toml_value(kind)}"
            )
        raise ValueError(
            f"unknown endpoint type {toml_value(kind)} (stream services take "
            f"{', '.join(STREAM_TYPES)}, each also behind haproxy:)"
        )
    if kind in ("tcp", "tcp6", "ssl", "tls"):
        # tls: takes a certificate directory first and its port as port=.
        if kind == "tls":
            port = kwargs.get("port", "443")
        else:
            port = args[0] if args else kwargs.get("port", "")
        if len(args) > 1 and "interface" in kwargs:
            raise ValueError(_COLON_HINT)
        problem = _check_port(port)
        if problem is None and kwargs.get("interface"):
            problem = _check_address(kwargs["interface"])
        if problem:
            raise ValueError(problem)
    if kind == "systemd":
        domain = kwargs.get("domain", args[0] if args else "")
        if domain not in ("INET", "INET6", "UNIX"):
            raise ValueError("systemd needs domain=INET, INET6 or UNIX")
        if ("name" in kwargs) == ("index" in kwargs):
            raise ValueError("systemd needs exactly one of name=NAME or index=N")
        if not environment:
            return
    if kind in ("ssl", "tls") and not environment:
        return
    from twisted.internet import endpoints

    try:
        endpoints.serverFromString(None, description)
    except KeyError as e:
        raise ValueError(f"no inherited socket named {toml_value(e.args[0])}") from None
    except IndexError:
        raise ValueError("no inherited socket at that index") from None
    except Exception as e:  # Twisted's parsers raise a variety of types.
        raise ValueError(explain_parser_error(kind, e)) from None


# Each stream endpoint type's parameters, as Twisted's serverFromString
# documents them (tests/test_config.py checks Twisted still takes each).
ENDPOINT_PARAMETERS = {
    "tcp": ("port", "interface", "backlog"),
    "tcp6": ("port", "interface", "backlog"),
    "ssl": ("port", "privateKey", "certKey", "sslmethod", "interface", "backlog",
            "extraCertChain", "dhParameters"),
    "tls": ("path", "port", "interface", "backlog"),
    "unix": ("address", "mode", "backlog", "lockfile"),
    "systemd": ("domain", "index", "name"),
}

_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']*)'")
_POSITIONAL = re.compile(r"takes .* positional arguments? but \d+ (were|was) given")


def explain_parser_error(kind: str, error: Exception) -> str:
    """
    What Twisted's endpoint parser refused, in netlab's words: Twisted's
    parsers are Python functions, so a misspelt parameter is a TypeError
    naming a private function (C{_parseTCP() got an unexpected keyword
    argument 'interfce'}).
    """
    known = ENDPOINT_PARAMETERS.get(kind, ())
    unexpected = _UNEXPECTED.search(str(error))
    if isinstance(error, TypeError) and unexpected:
        return (
            f'unknown parameter "{unexpected[1]}" for {kind} '
            f"(known: {', '.join(known)})"
        )
    if isinstance(error, TypeError) and _POSITIONAL.search(str(error)):
        return (
            f"too many ':'-separated values for {kind}: after the {known[0]}, "
            f"write each as name=value (known: {', '.join(known)})"
        )
    return str(error) or type(error).__name__
