"""netlab: a Twisted network lab daemon."""

__version__ = "0.1.0"

#: The name netlab is published under on PyPI (C{pip install netlab-daemon}):
#: PyPI's C{netlab} is an unrelated project.  The import package, the
#: C{netlab} command and the twistd plugin are all still called netlab.
DISTRIBUTION = "netlab-daemon"


def version_lines() -> list[str]:
    """
    What C{netlab version} and C{twistd netlab --version} print: the
    versions a bug report needs.
    """
    import platform

    import twisted

    return [
        f"netlab {__version__} ({DISTRIBUTION} on PyPI)",
        f"Twisted {twisted.__version__}",
        f"Python {platform.python_version()}",
    ]
