"""
Every private Twisted attribute or method netlab touches, in one place.

Twisted keeps no promise about names that start with an underscore, so
each one netlab relies on is reached only through a function here, with a
comment saying why netlab needs it, and C{tests/test_twisted_internals.py}
checks that each still exists and behaves as assumed on the installed
Twisted: an upgrade that changes one fails there, with a clear message,
instead of somewhere deep in a protocol.
"""

from __future__ import annotations

# -- twisted.internet: transports and ports ----------------------------------

# -- twisted.application: strports services ---------------------------------

# -- twisted.internet: systemd socket activation -----------------------------

# -- twisted.internet: the reactor's exit signal ------------------------------

# -- twisted.web --------------------------------------------------------------
