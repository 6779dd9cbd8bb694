/** Test doubles for the component tests: a signed-in AuthClient and a scripted API behind `fetch`.
 *  Only the network is faked; every component, hook and parser under test is the real one. */
import type { AuthClient, AuthState } from "@/auth/types";

export class FakeAuth implements AuthClient {
  tokens = 0;
  loggedOut = false;
  constructor(private readonly state: AuthState = { kind: "signed-in", user: { username: "alice", tenant: "acme", roles: ["user"] } }) {}
  init = async () => this.state;
  login = async () => undefined;
  logout = async () => {
    this.loggedOut = true;
  };
  token = async () => `token-${++this.tokens}`;
  onChange = () => () => undefined;
}

export interface Call {
  method: string;
  path: string;
  headers: Headers;
  body: string | undefined;
}

type Handler = (call: Call) => Response | Promise<Response>;

/** A fetch that answers by "METHOD path-regex" routes and records every call. */
export function fakeFetch(routes: [string, Handler][]) {
  const calls: Call[] = [];
  const impl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), "https://lab.test");
    const call: Call = {
      method: init?.method ?? "GET",
      path: url.pathname + url.search,
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? init.body : undefined,
    };
    calls.push(call);
    for (const [pattern, handler] of routes) {
      const [m, p] = pattern.split(" ", 2);
      if (m === call.method && new RegExp(`^${p}$`).test(url.pathname)) return handler(call);
    }
    return json(404, { type: "urn:seclab:problem:not-found", title: "Not found", status: 404 });
  };
  return { impl: impl as typeof fetch, calls };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const problem = status >= 400;
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": problem ? "application/problem+json" : "application/json", ...headers },
  });
}

/** A text/event-stream body whose events the test releases one by one. */
export function controlledStream() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  const enc = new TextEncoder();
  return {
    response: () => new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }),
    send: (event: string, data: unknown) => ctl.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
    close: () => ctl.close(),
  };
}

export const CONV = "11111111-2222-4333-8444-555555555555";
export const NOW = "2026-01-01T00:00:00Z";

export function userMessage(id: string, content: string, extra: Record<string, unknown> = {}) {
  return {
    id, conversation_id: CONV, role: "user", content, content_type: "text/plain",
    guard: { decision: "allow", reasons: [] }, status: "pending", created_at: NOW, ...extra,
  };
}

export function reply(id: string, to: string, content: string) {
  return {
    id, conversation_id: CONV, role: "assistant", content, content_type: "text/plain", guard: null,
    status: null, output_decision: "allow", reply_to: to, provider: "local", created_at: NOW,
  };
}
