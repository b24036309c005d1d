"""Secrets out of text, by parsing each URL: its password and its secret-named query parameters.

A URL is ``scheme://[user[:password]@]host[:port][/path][?query][#fragment]``. Its userinfo
ends at the LAST ``@`` (a password may hold a raw ``@``, ``:``, ``/``, ``?`` or ``#``), as
urllib's ``rpartition("@")`` has it; masking never leaks a part of a password, at worst it
hides more (a ``user@host`` inside the query). SQLAlchemy's ``make_url`` cannot do this job:
it fails on a raw ``@`` in a password (with an error that quotes the rest of it) and rewrites
the text it renders. Only the secret spans are replaced; the rest of the text is kept as is.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "********"

# a scheme starts the text, or follows whitespace or an opening/separating character
# (never ':' or a letter: 'u:ab://c' is inside a password, not a second URL)
_SCHEME = re.compile(r"""(?:^|(?<=[\s"'(<\[{,;=|]))[A-Za-z][A-Za-z0-9+.\-]*://""")
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "authorization",
    "cookie",
)
"""Words of a secret setting's name (``is_secret``): such a value is never shown."""
_PARAM_PARTS = frozenset({"pwd", "pass", "key", "auth", "sig", "signature", "session", "sid"})
"""Further words of a secret query parameter (``?key=``, ``?auth=``, ``?sig=``...)."""
_WORD = re.compile(r"[a-z0-9]+")
_CLOSERS = frozenset("'\")]}>,;.")
"""Characters that end a sentence or a quotation around a URL in text: not part of it."""


def secret_name(name: str) -> bool:
    """True for a secret-looking setting name: password, token, api_key, ... inside it."""
    low = name.lower().replace("-", "_")
    return any(word in low for word in _SECRET_WORDS)


def secret_param(name: str) -> bool:
    """True for a query parameter that holds a secret: a secret name, or one with a word such
    as ``key``, ``auth``, ``pwd``, ``sig`` (``access_key``, ``sslkey``, ``authSource``...)."""
    low = unquote_plus(name).lower()
    if secret_name(low) or low.endswith("key") or "auth" in low:
        return True
    return any(word in _PARAM_PARTS for word in _WORD.findall(low))


def _mask_params(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=********`` (``&`` or ``;`` separated)."""
    if "=" not in text:
        return text
    parts = re.split(r"([&;])", text)
    for i in range(0, len(parts), 2):
        name, eq, value = parts[i].partition("=")
        if eq and value and secret_param(name):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def _mask_one(url: str) -> str:
    """One URL (``scheme://...`` to its end) with its password and secret parameters masked."""
    head, _, rest = url.partition("://")
    at = rest.rfind("@")
    userinfo = ""
    if at >= 0:
        user, colon, password = rest[:at].partition(":")
        userinfo = f"{user}:{MASK}@" if colon and password else rest[: at + 1]
        rest = rest[at + 1 :]
    query = fragment = ""
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    return (
        f"{head}://{userinfo}{rest}"
        + (qmark + _mask_params(query) if qmark else "")
        + (hash_ + _mask_params(fragment) if hash_ else "")
    )


def url_password(value: str) -> str | None:
    """The password of a URL (as written, not decoded), or ``None`` when it has none."""
    scheme = _SCHEME.match(value.strip())
    if scheme is None:
        return None
    rest = value.strip()[scheme.end() :]
    at = rest.rfind("@")
    _, colon, password = rest[: max(at, 0)].partition(":")
    return password if colon and password else None


def leaks_password(text: str, url: str, chunk: int = 4) -> bool:
    """True when ``text`` holds a piece (``chunk`` characters or more) of ``url``'s password,
    raw or decoded: a parser's message that quotes the URL past its first ``@``."""
    password = url_password(url)
    if password is None:
        return False
    for form in {password, unquote_plus(password)}:
        if any(form[i : i + chunk] in text for i in range(max(1, len(form) - chunk + 1))):
            return True
    return False


def mask_url(value: str) -> str:
    """A setting's value: when it is a URL, the whole of it (spaces too) is one URL, masked;
    other text as :func:`mask_secrets`. ``redis://:pw@h/0`` -> ``redis://:********@h/0``."""
    url = value.strip()
    match = _SCHEME.match(url)
    if match is None or _SCHEME.search(url, match.end()) is not None:
        return mask_secrets(value)
    return value.replace(url, _mask_one(url), 1)


def mask_secrets(text: str) -> str:
    """Every URL in ``text`` (an error message, a driver's exception, a log line) with its
    password and secret-named query parameters replaced by ``********``.

    In free text a URL ends at whitespace or where the next URL starts (a closing quote,
    bracket or full stop at its end is the text's); other text is left untouched. ``postgresql://app:p@ss@db/x`` -> ``postgresql://app:********@db/x``.
    """
    if "://" not in text:  # the common case: one scan, nothing to do
        return text
    out: list[str] = []
    pos = 0
    starts = [m.start() for m in _SCHEME.finditer(text)]
    for i, start in enumerate(starts):
        if start < pos:
            continue
        end = start
        limit = starts[i + 1] if i + 1 < len(starts) else len(text)
        while end < limit and not text[end].isspace():
            end += 1
        while end > start and text[end - 1] in _CLOSERS:  # the sentence's, not the URL's
            end -= 1
        out.append(text[pos:start])
        out.append(_mask_one(text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)
