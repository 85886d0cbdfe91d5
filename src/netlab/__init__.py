"""netlab: a Twisted network lab daemon."""

__version__ = "0.1.0"
