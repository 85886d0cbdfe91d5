"""
The twistd plugin's options and service maker: C{twistd -n netlab}.
"""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from netlab import version_lines
from netlab.app.registry import load
from netlab.app.service import NetlabService
from netlab.app.workers import WorkerRole, worker_arguments
from netlab.core.config import Config, ConfigError, overrides
from netlab.core.settings import LOG_LEVELS
from netlab.core.textlog import console_observer


class Options(usage.Options):
    """Command-line options of C{twistd netlab}."""

    synopsis = "[--config FILE] [--log-level LEVEL] [--log-format FORMAT] [--log-file PATH]"
    longdesc = (
        "Run the netlab network lab daemon. Without --config it serves TCP "
        "and UDP echo on 127.0.0.1 port 7007, the line chat on port 7070 and "
        "the web site on port 8080, loopback only; a TOML config file chooses "
        "services, addresses and limits (see examples/netlab.toml). Command-line "
        "log options override the file's [log] section."
    )
    optParameters = [
        ["config", "c", None, "TOML config file (default: built-in loopback-only defaults)."],
        ["log-level", None, None, f"Lowest level logged: {', '.join(LOG_LEVELS)}."],
        ["log-format", None, None, "Format of --log-file or [log] file: text or json."],
        ["log-file", None, None, "Write netlab's events to this file instead of twistd's log."],
    ]

    netlab_config: Config
    # In a worker process (started by a parent with [daemon] workers > 1): its role.
    worker: WorkerRole | None = None

    def opt_version(self) -> None:
        """Display netlab's, Twisted's and Python's versions and exit."""
        print("\n".join(version_lines()))
        raise SystemExit(0)

    def postOptions(self) -> None:
        """
        Load and validate the config: any error stops twistd before it
        listens, with the error's one line on standard error and status 1.
        """
        self.worker = WorkerRole.from_environ(os.environ)
        if self.worker is not None:
            # The parent checked the file and runs this config; the file
            # may have changed since (it is read again on SIGHUP).
            self.netlab_config = self.worker.config
            self._no_pidfile_in_foreground()
            self._choose_console_log()
            return
        try:
            config = load(self["config"])
            self.netlab_config = overrides(
                config,
                level=self["log-level"],
                format=self["log-format"],
                file=self["log-file"],
            )
        except ConfigError as e:
            # Not a UsageError: twistd would print its whole usage text
            # before the one line that matters.  SystemExit with a message
            # writes it to standard error and exits with status 1.
            raise SystemExit(str(e)) from None
        self._no_pidfile_in_foreground()
        self._choose_console_log()

    def _no_pidfile_in_foreground(self) -> None:
        """
        In the foreground, write no pid file unless one was named: twistd's
        default C{twistd.pid} only made a second run in the same folder fail
        with "Another twistd server is running", not why; without it, the
        second run says which port is taken.
        """
        twistd = self.parent
        if twistd is not None and twistd.get("nodaemon") and twistd.get("pidfile") == "twistd.pid":
            twistd["pidfile"] = ""

    def _choose_console_log(self) -> None:
        """
        Log to the terminal through netlab's faster formatter (the same
        lines as twistd's) when twistd would log to standard output and no
        other C{--logger} or C{--syslog} was asked for.
        """
        twistd = self.parent
        if twistd is None or twistd.get("logger") or twistd.get("syslog"):
            return
        if twistd.get("nodaemon") and twistd.get("logfile") in (None, "", "-"):
            # A name, as if given as --logger: twistd imports it after us.
            twistd["logger"] = f"{console_observer.__module__}.{console_observer.__name__}"


def makeService(options: Options) -> IService:
    """The daemon for C{options}."""
    from twisted.internet import reactor

    config = options.netlab_config
    if options.worker is None and config.daemon.workers > 1:
        from netlab.app.supervisor import Supervisor

        # A daemonized twistd changes folder: the workers get absolute paths.
        path = os.path.abspath(options["config"])
        return Supervisor(
            config, reactor, path, worker_arguments(options.parent or {}, path)
        )
    return NetlabService(config, reactor, config_path=options["config"], worker=options.worker)
