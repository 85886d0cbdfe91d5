"""
What the login service says and the states it says it in: prompts, state
names, telnet's echo commands, and the cleaning of what users type.
"""

from __future__ import annotations

from netlab.protocols.lines import IAC, WILL, WONT

ECHO = 0x01
WILL_ECHO = bytes((IAC, WILL, ECHO))
WONT_ECHO = bytes((IAC, WONT, ECHO))

# What the connection waits for.
(IDENTIFY, LOGIN, PASSWORD, NEW_PASSWORD, RETYPE, BUSY, SHELL) = (
    "identify", "login", "password", "new password", "retype", "busy", "shell",
)
PROMPTS = {
    IDENTIFY: "What is your name? ",
    LOGIN: "login: ",
    PASSWORD: "Password: ",
    RETYPE: "Retype the password: ",
}
MAX_NAME = 40

BAD_NAME = "Login names are a letter, then up to 31 letters, digits, _, - or ."


def clean(text: str) -> str:
    """C{text} without control characters, so nothing typed can drive a terminal."""
    return "".join(c for c in text if c.isprintable()).strip()
