/** The chat API on the page's own origin (the edge proxies /api/): bearer token from the auth module,
 *  problem+json refusals turned into ProblemError, an Idempotency-Key on every send. */
import { networkProblem, problemFrom, ProblemError } from "./problems";
import { readEvents } from "./sse";
import type {
  AuditPage,
  EdgeRefusalList,
  LabAuditPage,
  RequestEventList,
  Conversation,
  ConversationCreate,
  ConversationPage,
  Exchange,
  MessageCreate,
  MessagePage,
} from "./types";

export type TokenSource = () => Promise<string>;

export const API_BASE = "/api/v1";

export interface SendResult {
  /** 201: answered within the request; 202: accepted, the reply comes later (follow its events). */
  status: 201 | 202;
  exchange: Exchange;
  replayed: boolean;
}

/** A fresh Idempotency-Key (the API's pattern: [A-Za-z0-9._:-]{1,255}). */
export function newIdempotencyKey(): string {
  return `web-${crypto.randomUUID()}`;
}

export class ApiClient {
  constructor(
    private readonly token: TokenSource,
    private readonly fetchImpl: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${await this.token()}`);
    headers.set("Accept", "application/json");
    if (init.body !== undefined) headers.set("Content-Type", "application/json");
    let res: Response;
    try {
      // credentials "omit": the API authenticates by bearer token only; no cookie rides along (CSRF-proof).
      res = await this.fetchImpl(`${API_BASE}${path}`, { ...init, headers, credentials: "omit", cache: "no-store" });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ProblemError(networkProblem());
    }
    if (!res.ok) throw new ProblemError(await problemFrom(res));
    return res;
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  listConversations(cursor?: string | null, limit?: number): Promise<ConversationPage> {
    return this.json(`/conversations${query({ cursor, limit })}`);
  }

  createConversation(body: ConversationCreate): Promise<Conversation> {
    return this.json("/conversations", { method: "POST", body: JSON.stringify(body) });
  }

  listMessages(conversationId: string, cursor?: string | null, limit?: number): Promise<MessagePage> {
    return this.json(`/conversations/${encodeURIComponent(conversationId)}/messages${query({ cursor, limit })}`);
  }

  /** Post a message. The same key on a retry returns the first result (never a second post). */
  async sendMessage(conversationId: string, body: MessageCreate, idempotencyKey: string): Promise<SendResult> {
    const res = await this.request(`/conversations/${encodeURIComponent(conversationId)}/messages`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Idempotency-Key": idempotencyKey },
    });
    return {
      status: res.status === 201 ? 201 : 202,
      exchange: (await res.json()) as Exchange,
      replayed: res.headers.get("Idempotent-Replayed") === "true",
    };
  }

  /** Follow a message's Server-Sent Events until `done`; `timeout` reconnects (the server ends a
   *  stream after 60 s). Resolves with the last exchange seen. */
  async followMessage(
    conversationId: string,
    messageId: string,
    onExchange: (ex: Exchange) => void,
    signal?: AbortSignal,
    maxStreams = 5,
  ): Promise<Exchange | null> {
    let last: Exchange | null = null;
    for (let n = 0; n < maxStreams; n++) {
      const res = await this.request(
        `/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}/events`,
        { headers: { Accept: "text/event-stream" }, ...(signal ? { signal } : {}) },
      );
      if (!res.body) return last;
      let finished = false;
      await readEvents(res.body, (ev) => {
        if (ev.event === "message") {
          last = JSON.parse(ev.data) as Exchange;
          onExchange(last);
        } else if (ev.event === "done") {
          finished = true;
        }
      });
      if (finished) return last;
    }
    return last;
  }

  /** Every audit log of the lab, newest first (lab-admin). */
  labAudit(cursor?: string | null, limit?: number): Promise<LabAuditPage> {
    return this.json(`/admin/audit${query({ cursor, limit })}`);
  }

  /** The edge's latest own refusals with their request ids (lab-admin). */
  edgeRefusals(limit?: number): Promise<EdgeRefusalList> {
    return this.json(`/admin/edge-refusals${query({ limit })}`);
  }

  /** One request's events from every service's logs, oldest first (lab-admin; centralized logs). */
  requestEvents(requestId: string): Promise<RequestEventList> {
    return this.json(`/admin/request-events${query({ request_id: requestId })}`);
  }

  /** The caller's tenant audit log, oldest first (tenant-admin). */
  tenantAudit(cursor?: string | null, limit?: number): Promise<AuditPage> {
    return this.json(`/tenant/audit${query({ cursor, limit })}`);
  }
}

function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
