"use client";
/** The auth client and its state for the components (one client per page load). */
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";

import type { AuthClient, AuthState } from "./types";

interface AuthValue {
  client: AuthClient;
  state: AuthState;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ client, children }: { client: AuthClient; children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ kind: "loading" });
  useEffect(() => {
    let live = true;
    const off = client.onChange((s) => live && setState(s));
    client.init().then(
      (s) => live && setState(s),
      () => live && setState({ kind: "unavailable", reason: "The login could not start." }),
    );
    return () => {
      live = false;
      off();
    };
  }, [client]);
  return <AuthContext.Provider value={{ client, state }}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error("useAuth outside AuthProvider");
  return v;
}
