"""The security headers: computed once from ``[security.headers]``, added to each response."""

from __future__ import annotations

from fastplug.plugins.security.settings import HeadersSettings

Header = tuple[bytes, bytes]


def static_headers(conf: HeadersSettings, https: bool) -> tuple[Header, ...]:
    """The headers every response gets (HSTS only when ``https``)."""
    out: list[Header] = []
    if https and conf.hsts_seconds:
        value = f"max-age={conf.hsts_seconds}"
        if conf.hsts_include_subdomains:
            value += "; includeSubDomains"
        if conf.hsts_preload:
            value += "; preload"
        out.append((b"strict-transport-security", value.encode()))
    if conf.content_type_nosniff:
        out.append((b"x-content-type-options", b"nosniff"))
    if conf.frame_options:
        out.append((b"x-frame-options", conf.frame_options.encode()))
    if conf.referrer_policy:
        out.append((b"referrer-policy", conf.referrer_policy.encode()))
    if conf.cross_origin_opener_policy:
        out.append((b"cross-origin-opener-policy", conf.cross_origin_opener_policy.encode()))
    if conf.content_security_policy:
        name = b"content-security-policy-report-only" if conf.csp_report_only else b"content-security-policy"
        out.append((name, conf.content_security_policy.encode()))
    if conf.server:
        out.append((b"server", conf.server.encode()))
    return tuple(out)


def finished(
    response: list[Header] | tuple[Header, ...],
    extra: tuple[Header, ...],
    names: frozenset[bytes],
    added: list[Header] | tuple[Header, ...] = (),
    vary_origin: bool = False,
) -> list[Header]:
    """``response``'s headers plus those of ``extra`` it does not set itself (a route's own
    ``X-Frame-Options`` wins, as with Django's middleware), then ``added``, and ``Origin`` in
    ``Vary`` when ``vary_origin``: one pass over the response's headers (per response)."""
    if not extra and not added and not vary_origin:
        return response if isinstance(response, list) else list(response)
    own: set[bytes] | None = None
    vary = -1
    for i, (name, _) in enumerate(response):
        if name in names:
            own = {name} if own is None else own | {name}
        elif name == b"vary":
            vary = i
    out = [*response, *(extra if own is None else (h for h in extra if h[0] not in own)), *added]
    if vary_origin:
        if vary < 0:
            out.append((b"vary", b"Origin"))
        else:
            value = out[vary][1]
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"origin" not in tokens and b"*" not in tokens:
                out[vary] = (b"vary", value + b", Origin")
    return out
