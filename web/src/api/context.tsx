"use client";
/** One ApiClient per auth client: every request asks the auth module for a (renewed) token. */
import { createContext, useContext, useMemo, type ReactNode } from "react";

import { useAuth } from "@/auth/context";

import { ApiClient } from "./client";

const ApiContext = createContext<ApiClient | null>(null);

export function ApiProvider({ children, api }: { children: ReactNode; api?: ApiClient }) {
  const { client } = useAuth();
  const value = useMemo(() => api ?? new ApiClient(() => client.token()), [api, client]);
  return <ApiContext.Provider value={value}>{children}</ApiContext.Provider>;
}

export function useApi(): ApiClient {
  const v = useContext(ApiContext);
  if (!v) throw new Error("useApi outside ApiProvider");
  return v;
}
