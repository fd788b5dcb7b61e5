"""The security headers of every HTTP response the gateway sends, pages and API alike.

One ASGI middleware owns them (docs/security.md says why each is there). The header lines are
built once, when the app is made; per response the middleware only appends them to the start
message. WebSocket scopes pass straight through, so nothing is added to the socket's frames.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_runtime.settings import Environment

# The one definition of the pages' policy (the built pages carry no <meta> copy of it). Only our
# own scripts and styles run, a second line of defence behind DOMPurify; the page talks only to
# its own origin ('self' covers its WebSocket: ws:/wss: to the same host and port, CSP Level 3);
# and no other site may frame it (clickjacking), which only a header can say.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# Every powerful feature off, except writing to the clipboard, which the copy buttons need.
PERMISSIONS_POLICY = ", ".join(
    (
        "accelerometer=()",
        "autoplay=()",
        "browsing-topics=()",
        "camera=()",
        "clipboard-read=()",
        "clipboard-write=(self)",
        "display-capture=()",
        "encrypted-media=()",
        "fullscreen=()",
        "gamepad=()",
        "geolocation=()",
        "gyroscope=()",
        "hid=()",
        "idle-detection=()",
        "magnetometer=()",
        "microphone=()",
        "midi=()",
        "payment=()",
        "picture-in-picture=()",
        "publickey-credentials-get=()",
        "screen-wake-lock=()",
        "serial=()",
        "sync-xhr=()",
        "usb=()",
        "xr-spatial-tracking=()",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Sign-in and sign-out check the Origin of their POSTs, which still carries the page's origin
    # under `no-referrer` because the page posts with fetch() (mode "cors"). A native <form> POST
    # would send `Origin: null` and be refused: such a form would need `same-origin` here.
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Permitted-Cross-Domain-Policies": "none",
}
# Only in production, where TLS is terminated in front of the gateway (the Ingress): a browser
# that saw it would refuse plain http to this host for a year.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"
# Every API answer is about the signed-in user: no cache (browser or shared) may keep it.
API_PREFIX = "/api/"
API_CACHE_CONTROL = "no-store"

_Lines = list[tuple[bytes, bytes]]


def _lines(headers: dict[str, str]) -> _Lines:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


class SecurityHeaders:
    """ASGI middleware: adds the security headers to every HTTP response, replacing any of the
    same name a route set; API responses also get `Cache-Control: no-store`."""

    def __init__(self, app: ASGIApp, *, app_env: Environment) -> None:
        self.app = app
        headers = dict(SECURITY_HEADERS)
        if app_env == "production":
            headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
        self._page = _lines(headers)
        self._api = _lines({**headers, "Cache-Control": API_CACHE_CONTROL})
        self._page_names = frozenset(name for name, _ in self._page)
        self._api_names = frozenset(name for name, _ in self._api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(API_PREFIX):
            ours, names = self._api, self._api_names
        else:
            ours, names = self._page, self._page_names
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [line for line in message.get("headers", ()) if line[0].lower() not in names]
                message = {**message, "headers": kept + ours}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette's outermost error handler would answer 500 without them: answer here, then
            # let it log the exception (it sends nothing once a response has started).
            if not started:
                await send_with_headers(_INTERNAL_ERROR_START)
                await send(_INTERNAL_ERROR_BODY)
            raise


_INTERNAL_ERROR_START: Message = {
    "type": "http.response.start",
    "status": 500,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
}
_INTERNAL_ERROR_BODY: Message = {"type": "http.response.body", "body": b"Internal Server Error"}
