/** The lab's login: keycloak-js on the realm's public `seclab-web` client.
 *
 *  - Authorization Code + PKCE S256, response in the URL fragment (never sent to a server or logged),
 *    no implicit flow (RFC 9700 2.1.1, 4.1; OWASP ASVS 4.0.3 V3.5.x).
 *  - Tokens live in this object only: never localStorage, sessionStorage or a script-readable cookie,
 *    so an XSS cannot lift a stored token after the fact (ASVS 4.0.3 V3.5.2; OWASP HTML5 cheat sheet).
 *    keycloak-js keeps only the one-time login state (state, nonce, PKCE verifier) in localStorage
 *    while the browser is at the login form; it deletes it when the code comes back.
 *  - Silent renewal with the (rotating, single-use) refresh token before the access token expires.
 *  - No login-status iframe: the edge forbids framing (frame-ancestors 'none'), and a page reload
 *    starts signed out (the Keycloak session makes the next login a redirect without the form).
 *  - Logout goes to Keycloak's end-session endpoint, ending the SSO session, not just this page's. */
import Keycloak from "keycloak-js";

import { userFromClaims } from "./claims";
import { AUTH_CONFIG, offersBrowserLogin, origin, redirectUri } from "./config";
import type { AuthClient, AuthState } from "./types";

export class KeycloakAuth implements AuthClient {
  private kc: Keycloak | null = null;
  private listeners = new Set<(s: AuthState) => void>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly fetchImpl: typeof fetch = (i, o) => fetch(i, o)) {}

  async init(): Promise<AuthState> {
    const discoveryUrl = `${origin()}/realms/${encodeURIComponent(AUTH_CONFIG.realm)}/.well-known/openid-configuration`;
    let discovery: unknown = null;
    try {
      const res = await this.fetchImpl(discoveryUrl, { credentials: "omit", cache: "no-store" });
      discovery = res.ok ? await res.json() : null;
    } catch {
      discovery = null;
    }
    if (discovery === null) {
      return { kind: "unavailable", reason: "The lab's identity provider does not answer, so nobody can log in right now." };
    }
    if (!offersBrowserLogin(discovery)) {
      return {
        kind: "unavailable",
        reason:
          "This lab runs the stand-in identity provider, which has no login form: logging in to this page " +
          "needs Keycloak. Meanwhile, use the API with `./lab token USER` and curl (see the README).",
      };
    }
    const kc = new Keycloak({ url: origin(), realm: AUTH_CONFIG.realm, clientId: AUTH_CONFIG.clientId });
    kc.onTokenExpired = () => void this.renew();
    kc.onAuthLogout = () => this.emit({ kind: "signed-out", error: "Your session has ended." });
    this.kc = kc;
    let authenticated = false;
    let error: string | undefined;
    try {
      authenticated = await kc.init({
        flow: "standard",
        pkceMethod: "S256",
        responseMode: "fragment",
        checkLoginIframe: false,
        redirectUri: redirectUri(),
        enableLogging: false,
      });
    } catch {
      error = "The login could not be completed. Please try again.";
    }
    if (window.location.pathname === AUTH_CONFIG.callbackPath) window.history.replaceState(null, "", "/");
    if (!authenticated) return error ? { kind: "signed-out", error } : { kind: "signed-out" };
    this.schedule();
    return { kind: "signed-in", user: userFromClaims(kc.tokenParsed) };
  }

  async login(): Promise<void> {
    await this.need().login({ redirectUri: redirectUri() });
  }

  async logout(): Promise<void> {
    clearTimeout(this.timer);
    await this.need().logout({ redirectUri: redirectUri() });
  }

  async token(): Promise<string> {
    const kc = this.need();
    await this.renew();
    if (!kc.token) throw new Error("not signed in");
    return kc.token;
  }

  onChange(listener: (state: AuthState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private need(): Keycloak {
    if (!this.kc) throw new Error("the login is not initialised");
    return this.kc;
  }

  /** Refresh when fewer than minValidityS seconds are left; a failure ends the page's session. */
  private async renew(): Promise<void> {
    const kc = this.need();
    try {
      const refreshed = await kc.updateToken(AUTH_CONFIG.minValidityS);
      if (refreshed) this.schedule();
    } catch {
      kc.clearToken();
      this.emit({ kind: "signed-out", error: "Your session has ended: please log in again." });
      throw new Error("session ended");
    }
  }

  /** Renew ahead of expiry even when the page is idle, so a live stream's next request has a token. */
  private schedule(): void {
    clearTimeout(this.timer);
    const exp = this.kc?.tokenParsed?.exp;
    if (!exp) return;
    const skew = this.kc?.timeSkew ?? 0;
    const inMs = (exp - Date.now() / 1000 + skew - AUTH_CONFIG.minValidityS + 5) * 1000;
    this.timer = setTimeout(() => void this.renew().catch(() => undefined), Math.max(5_000, inMs));
  }

  private emit(state: AuthState): void {
    for (const l of this.listeners) l(state);
  }
}
