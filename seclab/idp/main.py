"""HTTP face of the stand-in issuer on Keycloak's paths (`uvicorn seclab.idp.main:app`, ONE worker).

Paths (realm = lab.identity.realm):
  GET  /realms/{realm}/.well-known/openid-configuration
  GET  /realms/{realm}/protocol/openid-connect/certs
  POST /realms/{realm}/protocol/openid-connect/token      password | refresh_token | client_credentials
  GET  /realms/{realm}/protocol/openid-connect/userinfo   (POST too, as Keycloak)
  POST /realms/{realm}/protocol/openid-connect/logout     back-channel, with the refresh token
  POST /realms/{realm}/protocol/openid-connect/revoke     RFC 7009
Errors are OAuth JSON (`{"error", "error_description"}`) with Keycloak's status codes. Every answer
carries `X-Seclab-Idp: stand-in`, so nobody mistakes it for Keycloak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from labdef.realm import build_realm_export
from seclab.idp import STAND_IN_HEADER, STAND_IN_VALUE
from seclab.idp.issuer import Credentials, Issuer, OAuthError
from seclab.idp.keys import KeyStore
from seclab.idp.settings import IdpSettings

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1: token answers are not cached


def issuer_from_settings(settings: IdpSettings | None = None) -> Issuer:
    """Build the issuer from the lab definition: the realm is `build_realm_export(lab)`, as for Keycloak."""
    settings = settings or IdpSettings()
    lab = settings.load_lab()
    return Issuer(
        build_realm_export(lab),
        settings.issuer_base,
        KeyStore(settings.key_directory),
        Credentials.load(settings.credentials_file),
    )


def _oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers={**NO_STORE, **exc.headers})


async def _form(request: Request) -> dict[str, str]:
    """Form body as single values; a repeated parameter is refused (RFC 6749 3.1, 3.2)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise OAuthError(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form = await request.form()
    out: dict[str, str] = {}
    for key in form:
        values = form.getlist(key)
        if len(values) != 1 or not isinstance(values[0], str):
            raise OAuthError(400, "invalid_request", f"Parameter {key} must be given once")
        out[key] = values[0]
    return out


def create_app(issuer: Issuer | None = None, settings: IdpSettings | None = None) -> FastAPI:
    """`issuer` for tests (in-process); otherwise built lazily from the environment on first use."""
    app = FastAPI(title="seclab stand-in issuer (not Keycloak)", docs_url=None, redoc_url=None, openapi_url=None)
    holder: dict[str, Issuer] = {}
    if issuer is not None:
        holder["issuer"] = issuer

    def current() -> Issuer:
        if "issuer" not in holder:
            holder["issuer"] = issuer_from_settings(settings)
        return holder["issuer"]

    app.state.issuer = current

    @app.middleware("http")
    async def stand_in_header(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers[STAND_IN_HEADER] = STAND_IN_VALUE
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.exception_handler(OAuthError)
    async def on_oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        return _oauth_error(exc)

    def realm_of(name: str) -> Issuer:
        iss = current()
        if name != iss.realm.realm:
            raise OAuthError(404, "not_found", "Realm does not exist")
        return iss

    @app.get("/")
    async def banner() -> dict[str, Any]:
        iss = current()
        return {"service": "seclab stand-in issuer", "keycloak": False, "realm": iss.realm.realm,
                "issuer": iss.issuer}

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        current().keys.signing_key()
        return {"status": "UP"}

    @app.get("/realms/{realm}/.well-known/openid-configuration")
    async def discovery(realm: str) -> dict[str, Any]:
        return realm_of(realm).discovery()

    @app.get("/realms/{realm}/protocol/openid-connect/certs")
    async def certs(realm: str) -> JSONResponse:
        return JSONResponse(realm_of(realm).jwks(), headers={"Cache-Control": "max-age=60"})

    @app.post("/realms/{realm}/protocol/openid-connect/token")
    async def token(realm: str, request: Request) -> JSONResponse:
        iss = realm_of(realm)
        body = await iss.token(await _form(request), request.headers.get("authorization"))
        return JSONResponse(body, headers=NO_STORE)

    @app.api_route("/realms/{realm}/protocol/openid-connect/userinfo", methods=["GET", "POST"])
    async def userinfo(realm: str, request: Request) -> JSONResponse:
        return JSONResponse(realm_of(realm).userinfo(request.headers.get("authorization")), headers=NO_STORE)

    @app.post("/realms/{realm}/protocol/openid-connect/logout")
    async def logout(realm: str, request: Request) -> Response:
        iss = realm_of(realm)
        iss.logout(await _form(request), request.headers.get("authorization"))
        return Response(status_code=204, headers=NO_STORE)

    @app.post("/realms/{realm}/protocol/openid-connect/revoke")
    async def revoke(realm: str, request: Request) -> Response:
        iss = realm_of(realm)
        iss.revoke(await _form(request), request.headers.get("authorization"))
        return Response(status_code=200, headers=NO_STORE)

    return app


app = create_app()
