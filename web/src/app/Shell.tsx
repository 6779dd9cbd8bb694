"use client";
/** Page frame: providers, the header (who is signed in, Log out), and what the auth state allows. */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";

import { AdminView } from "@/admin/AdminView";

import { ApiProvider } from "@/api/context";
import { ProblemError } from "@/api/problems";
import { AuthProvider, useAuth } from "@/auth/context";
import { KeycloakAuth } from "@/auth/keycloak";
import type { AuthClient } from "@/auth/types";

function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A refusal is an answer, not a glitch: no automatic retries of 4xx (429 least of all).
        retry: (n, err) => n < 2 && !(err instanceof ProblemError && err.problem.status >= 400 && err.problem.status < 500),
        refetchOnWindowFocus: false,
        staleTime: 5_000,
      },
    },
  });
}

export function Shell({ children, auth }: { children: ReactNode; auth?: AuthClient }) {
  const [client] = useState<AuthClient>(() => auth ?? new KeycloakAuth());
  const [queries] = useState(makeQueryClient);
  return (
    <AuthProvider client={client}>
      <QueryClientProvider client={queries}>
        <ApiProvider>
          <Frame>{children}</Frame>
        </ApiProvider>
      </QueryClientProvider>
    </AuthProvider>
  );
}

function Frame({ children }: { children: ReactNode }) {
  const { client, state } = useAuth();
  // The lab-admin view lives in the same document: a navigation would drop the in-memory tokens.
  const [view, setView] = useState<"chat" | "admin">("chat");
  return (
    <>
      <header className="top">
        <h1>seclab chat</h1>
        {state.kind === "signed-in" && (
          <div className="who">
            <span>
              Signed in as <strong>{state.user.username}</strong>
              {state.user.tenant && <> ({state.user.tenant})</>}
            </span>
            {state.user.roles.includes("lab-admin") && (
              <button type="button" aria-pressed={view === "admin"} onClick={() => setView(view === "admin" ? "chat" : "admin")}>
                Lab admin
              </button>
            )}
            <button type="button" onClick={() => void client.logout()}>
              Log out
            </button>
          </div>
        )}
      </header>
      <main>
        {state.kind === "loading" && <p className="muted">Starting…</p>}
        {state.kind === "unavailable" && (
          <div className="notice notice-unavailable" role="alert">
            <p>
              <strong>Logging in is not available.</strong> {state.reason}
            </p>
          </div>
        )}
        {state.kind === "signed-out" && (
          <div className="signin">
            {state.error && (
              <p role="alert" className="notice">
                {state.error}
              </p>
            )}
            <p>Log in with your lab account to chat. The login form is the lab&apos;s Keycloak.</p>
            <button type="button" onClick={() => void client.login()}>
              Log in
            </button>
          </div>
        )}
        {state.kind === "signed-in" && (view === "admin" ? <AdminView /> : children)}
      </main>
    </>
  );
}
