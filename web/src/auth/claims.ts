/** Read the user from an access token's claims (display only: the API checks the signature and roles). */
import type { User } from "./types";

export function userFromClaims(claims: Record<string, unknown> | undefined): User {
  const c = claims ?? {};
  const realm = c.realm_access as { roles?: unknown } | undefined;
  const roles = Array.isArray(realm?.roles) ? realm.roles.filter((r): r is string => typeof r === "string") : [];
  return {
    username: typeof c.preferred_username === "string" ? c.preferred_username : "unknown",
    tenant: typeof c.tenant === "string" ? c.tenant : null,
    roles,
  };
}
