"""The seclab stand-in OIDC issuer: Keycloak's paths and claim shapes, for hosts that cannot run Keycloak.

It is a *stand-in*, not Keycloak: it says so in its discovery metadata (`seclab_stand_in: true`),
in an `X-Seclab-Idp: stand-in` header on every response, and in `lab status`. It serves the realm
that `labdef.realm.build_realm_export(lab)` builds (clients, users, roles, lifetimes, brute-force
settings), so Keycloak and the stand-in cannot drift. Crypto comes from joserfc and argon2-cffi.
"""

STAND_IN_HEADER = "X-Seclab-Idp"
STAND_IN_VALUE = "stand-in"
