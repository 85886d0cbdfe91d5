"""
Config validation without sockets: every refused value gives a ConfigError
that names the file, the key and the value, and what is accepted comes out
with the documented defaults filled in.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from netlab.app import registry as config
from netlab.core.config import ConfigError, overrides
from netlab.core.endpoints import (
    ENDPOINT_PARAMETERS,
    check_stream,
    endpoint_kind,
    parse_udp,
    split_endpoint,
)
from netlab.core.settings import LogSettings
from netlab.core.tomltext import toml_value
from netlab.protocols import classic, udp
from netlab.tap import Options


def classic_of(loaded: Any) -> dict[str, Any]:
    """The classic services' settings of C{loaded}, by name."""
    return {name: getattr(loaded, name) for name in classic.NAMES}


def default_listen(section: str) -> tuple[str, ...]:
    """Where the registry's kind for C{section} listens by default."""
    return config.kind_of(config.KINDS, section).default_listen


def write(tmp_path: Path, text: str, name: str = "netlab.toml") -> Path:
    """Write a config file into C{tmp_path}."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> tuple[str, str]:
    """Load C{text} from a file, expecting a ConfigError: its path and message."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    return str(path), str(e.value)


def assert_names(message: str, path: str, key: str, shown: str, why: str) -> None:
    """C{message} is C{path: key = shown: ...} and says C{why}."""
    assert message.startswith(f"{path}: {key} = {shown}: "), message
    assert why in message, message
    assert "\n" not in message, message


# -- sections and keys -------------------------------------------------------


def test_unknown_section(tmp_path: Path) -> None:
    """A section config.py does not know is refused by name, listing the known ones."""
    path, message = refused(tmp_path, "[ecko]\nlisten = []\n")
    assert message.startswith(f"{path}: [ecko]: unknown section"), message
    assert "echo" in message


def test_unknown_key_in_table(tmp_path: Path) -> None:
    """A misspelt key in a plain table names the table, key and value."""
    path, message = refused(tmp_path, '[log]\nlevl = "debug"\n')
    assert_names(message, path, "[log].levl", '"debug"', "unknown key")
    assert "level" in message


def test_unknown_key_in_list_item(tmp_path: Path) -> None:
    """A misspelt key in an [[echo]] item names the item's index, key and value."""
    path, message = refused(
        tmp_path, "[[echo]]\nname = 'a'\n\n[[echo]]\nname = 'b'\nport = 7007\n"
    )
    assert_names(message, path, "[echo][1].port", "7007", "unknown key")


@pytest.mark.parametrize(
    ("text", "key", "shown", "why"),
    [
        ("[[echo]]\nmax_line = '4096'\n", "[echo][0].max_line", '"4096"', "number"),
        ("[[echo]]\nmax_line = 4096.5\n", "[echo][0].max_line", "4096.5", "whole"),
        ("[[echo]]\nenabled = 1\n", "[echo][0].enabled", "1", "true or false"),
        (
            "[[echo]]\nlisten = 'tcp:7007'\n",
            "[echo][0].listen", '"tcp:7007"', "list of strings",
        ),
        ("[[udp_echo]]\nlisten = [7]\n", "[udp_echo][0].listen", "[7]", "strings"),
        ("[log]\nlevel = 3\n", "[log].level", "3", "must be a string"),
        ("echo = 'on'\n", "echo", '"on"', "list of tables"),
    ],
    ids=[
        "string-for-number", "fraction-for-int", "number-for-bool",
        "string-for-listen", "list-of-numbers", "number-for-string", "string-for-list",
    ],
)
def test_wrong_type(tmp_path: Path, text: str, key: str, shown: str, why: str) -> None:
    """A value of the wrong TOML type is refused with what type it must be."""
    path, message = refused(tmp_path, text)
    assert_names(message, path, key, shown, why)


def test_section_not_a_table(tmp_path: Path) -> None:
    """A section written as a plain value is refused, naming it and the value."""
    path, message = refused(tmp_path, "log = 'debug'\n")
    assert message.startswith(f"{path}: [log] must be a table"), message
    assert '"debug"' in message


@pytest.mark.parametrize(
    ("text", "key", "shown", "why"),
    [
        ("[[echo]]\nidle_timeout = -1\n", "[echo][0].idle_timeout", "-1", "0 to 86400"),
        ("[[echo]]\nidle_timeout = nan\n", "[echo][0].idle_timeout", "nan", "86400"),
        ("[[echo]]\nmax_line = 8\n", "[echo][0].max_line", "8", "from 16 to 1048576"),
        (
            "[[framed_echo]]\nmax_frame = 16777217\n",
            "[framed_echo][0].max_frame", "16777217", "from 1 to 16777216",
        ),
        ("[[udp_echo]]\nrate = 0\n", "[udp_echo][0].rate", "0", "0.001 to 10000000"),
        ("[log]\nrecent_events = 0\n", "[log].recent_events", "0", "from 1 to 100000"),
        (
            "[[udp_echo]]\nlisten = ['udp:70000']\n",
            "[udp_echo][0].listen[0]", '"udp:70000"',
            "port \"70000\" is not a number from 0 to 65535",
        ),
    ],
    ids=[
        "negative-timeout", "nan-timeout", "max-line-too-small", "max-frame-too-big",
        "zero-rate", "zero-recent-events", "udp-port-too-big",
    ],
)
def test_out_of_range(
    tmp_path: Path, text: str, key: str, shown: str, why: str
) -> None:
    """A number outside its limits is refused, giving the limits exactly."""
    path, message = refused(tmp_path, text)
    assert_names(message, path, key, shown, why)


@pytest.mark.parametrize(
    ("text", "key", "shown", "why"),
    [
        ("[[echo]]\nmode = 'loud'\n", "[echo][0].mode", '"loud"', "plain, upper, ok"),
        (
            "[log]\nlevel = 'verbose'\n",
            "[log].level", '"verbose"', "debug, info, warn, error, critical",
        ),
        ("[log]\nformat = 'xml'\n", "[log].format", '"xml"', "text, json"),
        (
            "[[framed_echo]]\nframing = 'int16'\n",
            "[framed_echo][0].framing", '"int16"', "int32, netstring",
        ),
    ],
    ids=["echo-mode", "log-level", "log-format", "framing"],
)
def test_bad_choice(tmp_path: Path, text: str, key: str, shown: str, why: str) -> None:
    """A value that is not one of its choices is refused, listing the choices."""
    path, message = refused(tmp_path, text)
    assert_names(message, path, key, shown, why)


# -- endpoint strings --------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "endpoint", "why"),
    [
        ("echo", "bogus:1", "unknown endpoint type \"bogus\""),
        ("echo", "tcp:abc", "port \"abc\" is not a number"),
        ("echo", "tcp:99999", "port \"99999\" is not a number from 0 to 65535"),
        ("echo", "tcp:7007:interface=localhost", "interface \"localhost\" is not an IP"),
        ("echo", "tcp6:7007:interface=::1", r"as \: (interface=\:\:1)"),
        ("echo", "udp:7007", "is a datagram endpoint"),
        ("udp_echo", "tcp:7007", "is a stream endpoint"),
        ("udp_echo", "udp:7007:7008", "exactly one port"),
        ("udp_echo", "udp:7007:interface=::1", r"as \: (interface=\:\:1)"),
        ("udp_echo", "udp:abc", "port \"abc\" is not a number"),
        ("echo", "systemd:domain=INET", "exactly one of name=NAME or index=N"),
        ("echo", "systemd:index=0", "domain=INET, INET6 or UNIX"),
        ("discard", "bogus:9", "unknown endpoint type \"bogus\""),
        ("discard", "udp:9:9", "exactly one port"),
    ],
    ids=[
        "unknown-type", "tcp-port-not-a-number", "tcp-port-too-big", "interface-not-ip",
        "unescaped-ipv6-tcp", "udp-in-echo", "tcp-in-udp-echo", "udp-two-ports",
        "unescaped-ipv6-udp", "udp-port-not-a-number", "systemd-no-name-or-index",
        "systemd-no-domain", "classic-unknown-type", "classic-udp-two-ports",
    ],
)
def test_bad_endpoint(tmp_path: Path, section: str, endpoint: str, why: str) -> None:
    """A listen string Twisted (or the UDP listener) cannot use is refused, quoted."""
    table = section in classic.NAMES
    header, index = (f"[{section}]", "") if table else (f"[[{section}]]", "[0]")
    path, message = refused(tmp_path, f"{header}\nlisten = ['{endpoint}']\n")
    shown = toml_value(endpoint)
    assert message.startswith(f"{path}: [{section}]{index}.listen[0] = {shown}: "), message
    assert why in message, message


def test_systemd_names_need_the_environment(tmp_path: Path) -> None:
    """A systemd socket name is only looked up when the environment is checked."""
    path = write(
        tmp_path, "[[echo]]\nlisten = ['systemd:domain=INET:name=netlab-echo']\n"
    )
    offline = config.load(path, environment=False)
    assert offline.echo[0].listen == ("systemd:domain=INET:name=netlab-echo",)
    with pytest.raises(ConfigError, match="no inherited socket named \"netlab-echo\""):
        config.load(path, environment=True)


def test_escaped_ipv6_endpoints_accepted(tmp_path: Path) -> None:
    r"""IPv6 interfaces written with Twisted's \: escapes are accepted as written."""
    path = write(
        tmp_path,
        r"""
[[echo]]
listen = ['tcp6:7007:interface=\:\:1', "tcp:7007:interface=\\:\\:1"]
[[udp_echo]]
listen = ['udp:7007:interface=\:\:1']
""",
    )
    loaded = config.load(path)
    assert loaded.echo[0].listen == (
        r"tcp6:7007:interface=\:\:1", r"tcp:7007:interface=\:\:1",
    )
    assert parse_udp(loaded.udp_echo[0].listen[0]) == (7007, "::1")
    assert split_endpoint(loaded.echo[0].listen[0]) == (
        "tcp6", ["7007"], {"interface": "::1"},
    )


def test_classic_mixed_listen_accepted(tmp_path: Path) -> None:
    """A classic service listens on stream and udp: strings from one list."""
    path = write(
        tmp_path,
        "[daytime]\nenabled = true\n"
        "listen = ['tcp:7013:interface=127.0.0.1', 'udp:7013:interface=127.0.0.1']\n",
    )
    daytime = config.load(path).daytime
    assert daytime.enabled
    assert [endpoint_kind(d) for d in daytime.listen] == ["stream", "datagram"]


# -- checks across sections --------------------------------------------------


def test_duplicate_service_names(tmp_path: Path) -> None:
    """Two services with one name are refused, naming the second and the first."""
    path, message = refused(
        tmp_path,
        "[[echo]]\nname = 'lab'\n\n[[udp_echo]]\nname = 'lab'\n",
    )
    assert_names(
        message, path, "[udp_echo][0].name", '"lab"', "already used by [echo][0]"
    )


def test_duplicate_default_names(tmp_path: Path) -> None:
    """An explicit name that a later unnamed entry would get by default clashes."""
    path, message = refused(
        tmp_path,
        "[[echo]]\nname = 'echo-2'\nlisten = ['tcp:7010']\n\n"
        "[[echo]]\nlisten = ['tcp:7011']\n",
    )
    assert_names(
        message, path, "[echo][1].name", '"echo-2"', "already used by [echo][0]"
    )


def test_disabled_services_do_not_clash(tmp_path: Path) -> None:
    """Only a service that runs takes its name, so a disabled classic one frees it."""
    path = write(tmp_path, "[[echo]]\nname = 'daytime'\n")
    loaded = config.load(path)
    assert loaded.echo[0].name == "daytime"
    assert not loaded.daytime.enabled


def test_bad_service_name(tmp_path: Path) -> None:
    """A name that would not fit a log line or a metric label is refused."""
    path, message = refused(tmp_path, "[[echo]]\nname = 'My Echo'\n")
    assert_names(message, path, "[echo][0].name", '"My Echo"', "a-z, 0-9")


def test_banner_with_newline(tmp_path: Path) -> None:
    """A banner must be one line; the message shows the newline escaped."""
    path, message = refused(tmp_path, '[[echo]]\nbanner = "Hello\\nWorld"\n')
    assert_names(message, path, "[echo][0].banner", '"Hello\\nWorld"', "single line")


def test_quit_word_with_carriage_return(tmp_path: Path) -> None:
    """A quit word must be one line too, carriage returns included."""
    path, message = refused(tmp_path, '[[echo]]\nquit = "bye\\r"\n')
    assert_names(message, path, "[echo][0].quit", '"bye\\r"', "single line")


def test_log_file_in_missing_directory(tmp_path: Path) -> None:
    """A log file that cannot be opened is refused at load, not at start."""
    log = tmp_path / "no-such-dir" / "netlab.log"
    path, message = refused(tmp_path, f"[log]\nfile = '{log}'\n")
    assert_names(message, path, "[log].file", f'"{log}"', "No such file or directory")


# -- files -------------------------------------------------------------------


def test_invalid_toml(tmp_path: Path) -> None:
    """A file that is not TOML is refused with the parser's line and column."""
    path, message = refused(tmp_path, "[[echo]]\nmode = plain\n")
    assert message.startswith(f"{path}: not valid TOML: "), message
    assert "line 2" in message


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is refused with a message, not a traceback."""
    path = tmp_path / "netlab.toml"
    path.write_bytes(b"[log]\nfile = '\xff'\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value) == f"{path}: not valid TOML: not UTF-8 (byte 14 is 0xff)"


def test_missing_file(tmp_path: Path) -> None:
    """A config file that does not exist is refused by name."""
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value) == f"{path}: cannot read: No such file or directory"


# -- defaults ----------------------------------------------------------------


def test_builtin_defaults() -> None:
    """Without a file the daemon runs one echo and one UDP echo on 127.0.0.1:7007."""
    loaded = config.load(None)
    assert loaded.source == "<built-in defaults>"
    assert [(e.name, e.listen) for e in loaded.echo] == [
        ("echo", ("tcp:7007:interface=127.0.0.1",)),
    ]
    assert [(u.name, u.listen) for u in loaded.udp_echo] == [
        ("udp-echo", ("udp:7007:interface=127.0.0.1",)),
    ]
    assert loaded.framed_echo == ()
    assert not any(s.enabled for s in classic_of(loaded).values())
    assert loaded.log == LogSettings()


def test_omitted_sections_keep_defaults(tmp_path: Path) -> None:
    """A file with only [log] keeps the built-in echo and UDP echo."""
    loaded = config.load(write(tmp_path, "[log]\nlevel = 'debug'\n"))
    defaults = config.load(None)
    assert loaded.log.level == "debug"
    assert loaded.echo == defaults.echo
    assert loaded.udp_echo == defaults.udp_echo
    assert classic_of(loaded) == classic_of(defaults)


def test_empty_list_turns_a_section_off(tmp_path: Path) -> None:
    """C{echo = []} runs no TCP echo and leaves the UDP echo alone."""
    loaded = config.load(write(tmp_path, "echo = []\n"))
    assert loaded.echo == ()
    assert loaded.udp_echo == config.load(None).udp_echo


def test_unnamed_entries_are_numbered(tmp_path: Path) -> None:
    """Unnamed [[echo]] entries are called echo, echo-2, echo-3 in file order."""
    loaded = config.load(
        write(
            tmp_path,
            "[[echo]]\nlisten = ['tcp:7007']\n"
            "[[echo]]\nlisten = ['tcp:7010']\nmode = 'upper'\n"
            "[[echo]]\nlisten = ['tcp:7011']\n"
            "[[udp_echo]]\n[[udp_echo]]\nlisten = ['udp:7010']\n",
        )
    )
    assert [e.name for e in loaded.echo] == ["echo", "echo-2", "echo-3"]
    assert loaded.echo[1].mode == "upper"
    assert [u.name for u in loaded.udp_echo] == ["udp-echo", "udp-echo-2"]
    assert loaded.udp_echo[0].listen == udp.KIND.default_listen


def test_classic_service_default_listen(tmp_path: Path) -> None:
    """Enabling a classic service without listen gives its loopback 70xx ports."""
    path = write(tmp_path, "[time]\nenabled = true\n[qotd]\nenabled = true\n")
    loaded = config.load(path)
    assert loaded.time.name == "time"
    assert loaded.time.listen == (
        "tcp:7037:interface=127.0.0.1", "udp:7037:interface=127.0.0.1",
    )
    assert loaded.qotd.listen == default_listen("qotd")
    assert loaded.qotd.quotes == classic.DEFAULT_QUOTES
    assert not loaded.discard.enabled


# -- command line ------------------------------------------------------------


def test_overrides_apply(tmp_path: Path) -> None:
    """Command-line log options replace the file's; None leaves a setting alone."""
    log = tmp_path / "events.log"
    loaded = config.load(write(tmp_path, "[log]\nlevel = 'warn'\nrecent_events = 7\n"))
    changed = overrides(loaded, level="debug", format="json", file=str(log))
    assert changed.log == LogSettings(
        level="debug", format="json", file=str(log), recent_events=7
    )
    assert overrides(loaded, level=None, format=None, file=None) is loaded


def test_overrides_refuse_bad_level(tmp_path: Path) -> None:
    """A bad --log-level is refused like a bad [log] level, marked as command line."""
    loaded = config.load(write(tmp_path, ""))
    with pytest.raises(ConfigError) as e:
        overrides(loaded, level="loud")
    assert str(e.value).startswith(
        f"{tmp_path / 'netlab.toml'} (command line): [log].level = \"loud\": "
    )


def test_overrides_refuse_bad_log_file(tmp_path: Path) -> None:
    """A --log-file that cannot be opened is refused before the daemon starts."""
    log = tmp_path / "no-such-dir" / "events.log"
    with pytest.raises(ConfigError, match="No such file or directory") as e:
        overrides(config.load(None), file=str(log))
    assert f'[log].file = "{log}"' in str(e.value)


def test_options_exit_with_the_error_line(tmp_path: Path) -> None:
    """
    twistd's Options stop at a bad file with SystemExit carrying the one
    line (status 1, the line on standard error), not a UsageError, after
    which twistd would print its whole usage text first.
    """
    path = write(tmp_path, "[[echo]]\nmode = 'loud'\n")
    with pytest.raises(SystemExit) as e:
        Options().parseOptions(["--config", str(path)])
    assert not isinstance(e.value, usage.UsageError)
    assert str(e.value.code).startswith(f'{path}: [echo][0].mode = "loud": ')


def test_options_accept_a_good_file(tmp_path: Path) -> None:
    """twistd's Options keep the loaded config, command-line overrides applied."""
    path = write(tmp_path, "[log]\nlevel = 'warn'\n")
    options = Options()
    options.parseOptions(["--config", str(path), "--log-level", "error"])
    assert options.netlab_config.source == str(path)
    assert options.netlab_config.log.level == "error"


def _twistd() -> list[str]:
    """The command that runs twistd from this interpreter's environment."""
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_twistd_refuses_a_bad_config(tmp_path: Path) -> None:
    """The real twistd prints the message and exits non-zero before listening."""
    port = _free_port()
    path = write(
        tmp_path,
        f"[[echo]]\nlisten = ['tcp:{port}:interface=127.0.0.1']\nmode = 'loud'\n",
    )
    result = subprocess.run(
        [*_twistd(), "--pidfile=", "-n", "netlab", "--config", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f'{path}: [echo][0].mode = "loud": must be one of plain, upper, ok' in output
    assert "listening on" not in output
    assert "Traceback" not in output
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_static_dir_is_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    """A relative static_dir names a folder beside the config file, wherever the daemon runs."""
    (tmp_path / "conf" / "files").mkdir(parents=True)
    path = write(tmp_path / "conf", '[http]\nstatic_dir = "files"\n')
    assert config.load(path).http.static_dir == str(tmp_path / "conf" / "files")
    absolute = write(tmp_path, f'[http]\nstatic_dir = "{tmp_path / "conf"}"\n', "abs.toml")
    assert config.load(absolute).http.static_dir == str(tmp_path / "conf")
    missing = write(tmp_path, '[http]\nstatic_dir = "files"\n', "missing.toml")
    with pytest.raises(ConfigError, match=r'\[http\]\.static_dir = ".*files": is not a directory'):
        config.load(missing)


@pytest.mark.parametrize("kind", sorted(ENDPOINT_PARAMETERS))
def test_endpoint_parameters_are_twisteds(kind: str) -> None:
    """
    The parameters an unknown-parameter error lists are the ones Twisted's
    parser for that type takes: each known one is accepted as name=value
    (whatever else then fails), and a made-up one is refused by name.
    """
    for name in ENDPOINT_PARAMETERS[kind]:
        try:
            serverFromString(None, f"{kind}:{name}=1")
        except TypeError as e:
            assert "unexpected keyword" not in str(e), (kind, name, e)
        except Exception:  # the value 1 is not a good one: that is not the point
            pass
    valid = {"tcp": "0", "tcp6": "0", "ssl": "0", "tls": "/nowhere", "unix": "/nowhere",
             "systemd": "domain=INET:index=0"}[kind]
    with pytest.raises(ValueError, match=rf'unknown parameter "interfce" for {kind} \(known: '):
        check_stream(f"{kind}:{valid}:interfce=1")


def test_tls_files_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ssl: string's relative privateKey= (and certKey=) is the config file's, as
    static_dir is: the daemon can run from any folder.  Absolute paths, escaped colons
    and other strings are left as they are."""
    from selfsigned import write_pem

    lab = tmp_path / "a:lab"
    (lab / "tls").mkdir(parents=True)
    key, cert = write_pem(lab / "tls")
    escaped = str(lab).replace(":", "\\:")
    proxied_string = (
        f"haproxy:ssl:0:interface=127.0.0.1:privateKey={escaped}/tls/{key.name}"
        f":certKey={escaped}/tls/{cert.name}"
    )
    path = write(lab, (
        "udp_echo = []\n[chat]\nenabled = false\n[[echo]]\nlisten = [\n"
        f'  "ssl:0:interface=127.0.0.1:privateKey=tls/{key.name}:certKey=tls/{cert.name}",\n'
        # (a TOML literal string: its backslashes are the endpoint's own)
        f"  '{proxied_string}',\n"
        '  "tcp:0:interface=127.0.0.1",\n]\n'
    ))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    first, proxied, plain = config.load(path).echo[0].listen
    assert first == (
        f"ssl:0:interface=127.0.0.1:privateKey={escaped}/tls/{key.name}"
        f":certKey={escaped}/tls/{cert.name}"
    )
    assert proxied == proxied_string
    assert plain == "tcp:0:interface=127.0.0.1"
    assert serverFromString(None, first)  # Twisted reads it as meant
