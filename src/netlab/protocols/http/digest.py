"""
httpbin's C{/digest-auth/QOP/USER/PASSWD[/ALGORITHM[/STALE_AFTER]]}: HTTP
Digest authentication (RFC 7616) for a student to watch a challenge and
its answer, with C{curl --digest} or C{urllib}'s C{HTTPDigestAuthHandler}.

As httpbin does it: QOP C{auth} or C{auth-int} (anything else: none, RFC
2069's answer without C{qop}), MD5, SHA-256 or SHA-512, and the cookies
httpbin sets: C{fake=fake_value} on every answer (C{?require-cookie=true}
wants it back), C{last_nonce} and C{stale_after}, with which httpbin
answers a nonce used twice after a failure, or the Nth success, with
C{stale=true}. The nonce is netlab's own: random, and signed with a key
of the site's, so a nonce the site never gave is challenged afresh
instead of checked. Secrets are compared with C{hmac.compare_digest}.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from twisted.web import pages
from twisted.web.resource import Resource
from twisted.web.server import Request

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.inspect import bad_request, header_text, send_json, send_text
from netlab.protocols.http.status import same_secret

# httpbin's realm: a client written for httpbin may have it in its password manager.
REALM = "me@kennethreitz.com"
# RFC 7616's names, and hashlib's.
ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256", "SHA-512": "sha512"}
QOPS = ("auth", "auth-int")
STALE_AFTER = re.compile(r"[0-9]{1,9}|never")
TRUE_WORDS = (b"1", b"t", b"true")
# RFC 9110's auth-param: a token, "=", then a token or a quoted-string.
AUTH_PARAM = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)'
)
NONCE_BYTES = 16


def parse_digest(header: bytes | None) -> dict[str, str] | None:
    """
    The parameters of an C{Authorization: Digest ...} header (names in
    lower case, quotes and escapes removed); None for no header, another
    scheme, or parameters that do not parse.
    """
    if not header:
        return None
    scheme, _, rest = header_text(header).strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = AUTH_PARAM.match(rest, position)
        if match is None or match.end() == position:
            return None
        value = match[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match[1].lower()] = value
        position = match.end()
    return params


def digest_hex(algorithm: str, *parts: str | bytes) -> str:
    """C{H(part:part:...)} in hex, with C{algorithm}'s hash: RFC 7616's H and KD."""
    data = b":".join(part.encode("utf-8") if isinstance(part, str) else part for part in parts)
    return hashlib.new(ALGORITHMS[algorithm], data).hexdigest()


def expected_response(
    params: dict[str, str], password: str, algorithm: str, method: str, uri: str, body: bytes
) -> str:
    """
    The C{response} a client knowing C{password} sends with C{params} (RFC
    7616 section 3.4.1; without a C{qop}, RFC 2069's). C{uri} and C{method}
    are the request's, not what the client claims.
    """
    qop = params.get("qop")
    ha1 = digest_hex(algorithm, params.get("username", ""), REALM, password)
    if qop == "auth-int":
        ha2 = digest_hex(algorithm, method, uri, digest_hex(algorithm, body))
    else:
        ha2 = digest_hex(algorithm, method, uri)
    nonce = params.get("nonce", "")
    if qop is None:
        return digest_hex(algorithm, ha1, nonce, ha2)
    return digest_hex(
        algorithm, ha1, nonce, params.get("nc", ""), params.get("cnonce", ""), qop, ha2
    )


class DigestAuth(Resource):
    """
    C{/digest-auth/QOP/USER/PASSWD[/ALGORITHM[/STALE_AFTER]]}: 200 and
    C{{"authenticated": true, "user": USER}} for a right Digest answer to a
    challenge of this site's, else 401 and a new challenge.
    """

    isLeaf = True
    usage = "use /digest-auth/QOP/USER/PASSWD[/ALGORITHM[/STALE_AFTER]]"

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key = key

    def make_nonce(self) -> str:
        """A fresh nonce: random, then its MAC under the site's key (hex, cookie-safe)."""
        random_part = os.urandom(NONCE_BYTES).hex()
        return random_part + self._sign(random_part)

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def issued(self, nonce: str) -> bool:
        """Whether this site gave out C{nonce}."""
        random_part, mac = nonce[:2 * NONCE_BYTES], nonce[2 * NONCE_BYTES:]
        if not re.fullmatch(r"[0-9a-f]{32}", random_part):
            return False
        return hmac.compare_digest(self._sign(random_part).encode(), mac.encode("ascii", "replace"))

    def render_GET(self, request: Request) -> bytes:
        path = [segment.decode("utf-8", "replace") for segment in request.postpath or []]
        if not 3 <= len(path) <= 5 or not path[1]:
            return pages.notFound("No Such Resource", self.usage).render(request)
        qop_name, user, password, *rest = path
        qop = qop_name if qop_name in QOPS else None
        algorithm = (rest[0] if rest else "MD5").upper()
        stale_after = rest[1] if len(rest) > 1 else "never"
        if algorithm not in ALGORITHMS:
            return bad_request(request, "the algorithm must be MD5, SHA-256 or SHA-512")
        if not STALE_AFTER.fullmatch(stale_after):
            return bad_request(request, "stale_after must be a whole number or never")
        require_cookie = (request.args or {}).get(b"require-cookie", [b""])[0].lower()
        params = parse_digest(request.getHeader(b"Authorization"))
        if params is None or (require_cookie in TRUE_WORDS and not request.getHeader(b"Cookie")):
            return self.challenge(request, qop, algorithm, stale_after)
        cookies = request.received_cookies
        if require_cookie in TRUE_WORDS and cookies.get(b"fake") != b"fake_value":
            request.setResponseCode(403)
            request.addCookie(b"fake", b"fake_value", path=b"/")
            return send_json(request, {"errors": ["missing cookie set on challenge"]})
        nonce = params.get("nonce", "")
        if not self.issued(nonce):
            return self.challenge(request, qop, algorithm, stale_after)
        stale_cookie = cookies.get(b"stale_after")
        if cookies.get(b"last_nonce") == nonce.encode() or stale_cookie == b"0":
            return self.challenge(request, qop, algorithm, stale_after, nonce, stale=True)
        if not self.answered(request, params, user, password, qop, algorithm):
            return self.challenge(request, qop, algorithm, stale_after, nonce)
        request.addCookie(b"fake", b"fake_value", path=b"/")
        if stale_cookie:
            request.addCookie(b"stale_after", next_stale_after(stale_cookie), path=b"/")
        return send_json(request, {"authenticated": True, "user": user})

    render_HEAD = render_GET

    def answered(
        self, request: Request, params: dict[str, str], user: str, password: str,
        qop: str | None, algorithm: str,
    ) -> bool:
        """Whether C{params} are a right answer, for this request, to the challenge sent."""
        if params.get("qop") != qop or params.get("algorithm", "MD5").upper() != algorithm:
            return False
        if qop is not None and not (params.get("nc") and params.get("cnonce")):
            return False
        uri = request.uri.decode("latin-1")
        if request.content is not None:
            request.content.seek(0)
            body = request.content.read()
        else:
            body = b""
        wanted = expected_response(
            params, password, algorithm, request.method.decode("ascii"), uri, body
        )
        # Both comparisons always run: how long this takes says nothing.
        # (The answer is checked against this request's own URI, so one made
        # for another URI fails without comparing the uri parameter.)
        user_ok = same_secret(params.get("username", "").encode("utf-8"), user.encode("utf-8"))
        answer_ok = hmac.compare_digest(
            params.get("response", "").lower().encode("ascii", "replace"), wanted.encode()
        )
        return user_ok & answer_ok

    def challenge(
        self, request: Request, qop: str | None, algorithm: str, stale_after: str,
        last_nonce: str | None = None, stale: bool = False,
    ) -> bytes:
        """401 with a new challenge, and httpbin's cookies."""
        offered = f', qop="{qop}"' if qop else ""
        opaque = digest_hex(algorithm, os.urandom(10))
        request.setResponseCode(401)
        request.setHeader(
            b"WWW-Authenticate",
            f'Digest realm="{REALM}", nonce="{self.make_nonce()}", opaque="{opaque}"'
            f'{offered}, algorithm={algorithm}, stale={"true" if stale else "false"}'.encode(),
        )
        request.addCookie(b"stale_after", stale_after.encode(), path=b"/")
        if last_nonce is not None:
            request.addCookie(b"last_nonce", last_nonce.encode(), path=b"/")
        request.addCookie(b"fake", b"fake_value", path=b"/")
        return send_text(
            request, "401 Unauthorized: answer the Digest challenge with the user name"
            " and password from this URL\n",
        )


def next_stale_after(value: bytes) -> bytes:
    """httpbin's countdown: one fewer successes before a stale answer; never stays never."""
    return b"%d" % (int(value) - 1) if value.isdigit() else b"never"


def digest_auth(context: HttpContext) -> DigestAuth:
    """C{/digest-auth/...}, its nonces signed with a key made for this site."""
    return DigestAuth(os.urandom(32))
