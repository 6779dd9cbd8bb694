/** Where the page logs in: the lab's realm behind the same edge (same origin as the page and the API),
 *  with the realm's public `seclab-web` client. The web role passes lab.yml's values at build time. */

export const AUTH_CONFIG = {
  realm: process.env.NEXT_PUBLIC_SECLAB_REALM ?? "seclab",
  clientId: process.env.NEXT_PUBLIC_SECLAB_WEB_CLIENT_ID ?? "seclab-web",
  /** Path of the registered redirect URI (lab.yml identity.redirect_uris: https://<edge>/callback). */
  callbackPath: process.env.NEXT_PUBLIC_SECLAB_CALLBACK_PATH ?? "/callback",
  /** Renew the access token when it has fewer seconds left than this (lab tokens live 300 s). */
  minValidityS: 60,
} as const;

export function origin(): string {
  return window.location.origin;
}

export function redirectUri(): string {
  return `${origin()}${AUTH_CONFIG.callbackPath}`;
}

/** Whether the identity provider offers a browser login: Keycloak's discovery document lists the
 *  authorization code flow; the lab's stand-in issuer answers `response_types_supported: ["none"]`. */
export function offersBrowserLogin(discovery: unknown): boolean {
  if (discovery === null || typeof discovery !== "object") return false;
  const d = discovery as Record<string, unknown>;
  const types = Array.isArray(d.response_types_supported) ? d.response_types_supported : [];
  const pkce = Array.isArray(d.code_challenge_methods_supported) ? d.code_challenge_methods_supported : [];
  return d.seclab_stand_in !== true && types.includes("code") && pkce.includes("S256");
}
