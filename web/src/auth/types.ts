/** What the page needs from a login, whatever provides it (keycloak-js in the lab, a fake in tests). */

export interface User {
  username: string;
  tenant: string | null;
  roles: string[];
}

export type AuthState =
  | { kind: "loading" }
  /** The identity provider has no browser login (the lab's stand-in issuer): said plainly, no fake login. */
  | { kind: "unavailable"; reason: string }
  | { kind: "signed-out"; error?: string }
  | { kind: "signed-in"; user: User };

export interface AuthClient {
  /** Start: handle a login callback in the URL, or find there is no session. */
  init(): Promise<AuthState>;
  /** Leave the page for the identity provider's login form (Authorization Code + PKCE S256). */
  login(): Promise<void>;
  /** End the identity provider's session (not just the page's) and come back signed out. */
  logout(): Promise<void>;
  /** A valid access token, renewed first when it expires soon (silent renewal, in memory only). */
  token(): Promise<string>;
  /** Called when the state changes outside init/login/logout (renewal failed, session ended). */
  onChange(listener: (state: AuthState) => void): () => void;
}
