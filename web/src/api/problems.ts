/** Every refusal in plain words, from its RFC 9457 problem+json `type` (urn:seclab:problem:<cause>).
 *  The page never shows a raw body or a stack: the type picks the sentence, the request id is quoted
 *  so a person can report a false positive (the edge's logs are searchable by it). */

export const PROBLEM_PREFIX = "urn:seclab:problem:";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  request_id?: string | null;
  /** Seconds from the Retry-After header, when the refusal is temporary. */
  retryAfterS?: number;
  guard?: { decision: string; reasons: string[] };
  message_id?: string;
  [extra: string]: unknown;
}

const WORDS: Record<string, string> = {
  "rate-limited": "Too many requests: slow down a little.",
  "budget-exhausted": "Your token budget for this hour is spent.",
  "prompt-injection": "This message was refused: it looks like a prompt-injection attempt.",
  "waf-blocked": "The web application firewall blocked this request.",
  unauthenticated: "Your session has ended: please log in again.",
  forbidden: "You are not allowed to do this.",
  validation: "The request was not valid.",
  "payload-too-large": "This message is too large.",
  "not-found": "Not found: it may belong to someone else or no longer exist.",
  "upstream-unavailable": "A service behind the page is unavailable right now; nothing you sent was lost.",
  "idempotency-key-reused": "This retry did not match the original message.",
  conflict: "The same message is still being sent.",
  "method-not-allowed": "This action is not allowed here.",
  network: "The lab could not be reached. Check your connection and try again.",
};

export function cause(p: Pick<Problem, "type">): string {
  return p.type.startsWith(PROBLEM_PREFIX) ? p.type.slice(PROBLEM_PREFIX.length) : "unknown";
}

/** The sentence shown for a refusal (never the raw server text alone). */
export function plainWords(p: Problem): string {
  return WORDS[cause(p)] ?? `The request failed (${p.status}).`;
}

/** Whether waiting (Retry-After) makes sense for this refusal. */
export function isTemporary(p: Problem): boolean {
  return p.retryAfterS !== undefined && p.retryAfterS > 0;
}

/** A problem from any failed response; a body that is not problem+json (a proxy page) still yields
 *  one, typed by status, so the page always has words to show. */
export async function problemFrom(res: Response): Promise<Problem> {
  const retry = parseRetryAfter(res.headers.get("Retry-After"));
  const ctype = res.headers.get("Content-Type") ?? "";
  let body: Partial<Problem> = {};
  if (ctype.includes("json")) {
    try {
      const parsed: unknown = await res.json();
      if (parsed !== null && typeof parsed === "object") body = parsed as Partial<Problem>;
    } catch {
      body = {};
    }
  }
  const type = typeof body.type === "string" ? body.type : `${PROBLEM_PREFIX}${statusCause(res.status)}`;
  return {
    ...body,
    type,
    title: typeof body.title === "string" ? body.title : res.statusText,
    status: res.status,
    request_id: typeof body.request_id === "string" ? body.request_id : res.headers.get("X-Request-ID"),
    ...(retry !== undefined ? { retryAfterS: retry } : {}),
  };
}

export function networkProblem(): Problem {
  return { type: `${PROBLEM_PREFIX}network`, title: "Network error", status: 0 };
}

function statusCause(status: number): string {
  if (status === 401) return "unauthenticated";
  if (status === 403) return "forbidden";
  if (status === 404) return "not-found";
  if (status === 413) return "payload-too-large";
  if (status === 429) return "rate-limited";
  if (status >= 500) return "upstream-unavailable";
  return "validation";
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 10.2.3). */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d{1,9}$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(plainWords(problem));
    this.name = "ProblemError";
  }
}
