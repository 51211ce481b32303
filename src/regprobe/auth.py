"""Registry authentication as an ``httpx.Auth`` flow.

Credentials are sent only after the registry asks for them (a 401 challenge), and from then on to that
registry's origin only; httpx strips ``Authorization`` on redirects to another origin.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class RegistryAuth(httpx.Auth):
    def __init__(self, username: str, password: str) -> None:
        self._basic = httpx.BasicAuth(username, password)
        self._challenged = False

    def __repr__(self) -> str:  # never show the password, even in a debugger or a traceback
        return "RegistryAuth(***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._challenged:
            yield from self._basic.auth_flow(request)
            return
        response = yield request
        if response.status_code != 401:
            return
        scheme = response.headers.get("www-authenticate", "").split(" ", 1)[0].lower()
        if scheme not in ("basic", ""):
            # Bearer token realms are not supported yet; the 401 stands and becomes an AuthError.
            return
        self._challenged = True
        yield from self._basic.auth_flow(request)
