# Python 2.7: runs inside the Autobahn|Testsuite virtualenv (see autobahn.py).
"""
Prints, as JSON, the largest message payload each fuzzingclient case sends:
{"9.1.6": 16777216, ...}.  The sizes come from the case classes themselves
(DATALEN, LEN, PAYLOAD after init()), so autobahn.py can tell which cases
a given max_body must refuse without copying the suite's numbers.
"""
import json
import sys

from autobahntestsuite import case as cases
from autobahntestsuite.caseset import CaseSet


class Factory(object):
    isServer = False


class Protocol(object):
    """Just enough of a WebSocket client protocol for the cases' init()."""

    factory = Factory()

    def __getattr__(self, name):
        if name.startswith("CLOSE_STATUS_CODE_"):
            return 1000
        raise AttributeError(name)


def largest_payload(instance):
    size = 0
    for name in ("DATALEN", "LEN"):
        value = getattr(instance, name, None)
        if isinstance(value, int):
            size = max(size, value)
    for name in ("PAYLOAD", "payload"):
        value = getattr(instance, name, None)
        if isinstance(value, (str, bytes, unicode)):  # noqa: F821 (Python 2)
            size = max(size, len(value))
    return size


def main():
    caseset = CaseSet(cases.CaseSetname, cases.CaseBasename, cases.Cases,
                      cases.CaseCategories, cases.CaseSubCategories)
    sizes = {}
    for klass in cases.Cases:
        sizes[caseset.caseClasstoId(klass)] = largest_payload(klass(Protocol()))
    json.dump(sizes, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
