"use client";
/** The lab-admin page: the audit log (every tenant's and the lab's, newest first, paged), the
 *  edge's latest refusals with their request ids, and one request's events from every service's logs
 *  (by id, or by clicking a refusal's id), to follow the attack/defence demo in the browser. */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";

import { useApi } from "@/api/context";
import { LIMITS } from "@/api/limits";
import { plainWords, ProblemError, PROBLEM_PREFIX } from "@/api/problems";

import { ProblemNotice } from "@/chat/ProblemNotice";

/** The edge's request ids (the API's pattern, logsearch.search.REQUEST_ID_RE). */
export const REQUEST_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9._:\\-]{7,127}";
const REQUEST_ID_RE = new RegExp(`^${REQUEST_ID_PATTERN}$`);

function RequestEvents({ requestId, onSearch }: { requestId: string | null; onSearch: (id: string) => void }) {
  const api = useApi();
  const [draft, setDraft] = useState("");
  const events = useQuery({
    queryKey: ["admin", "request-events", requestId],
    queryFn: () => api.requestEvents(requestId ?? ""),
    enabled: requestId !== null,
    retry: false,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const id = draft.trim();
    if (REQUEST_ID_RE.test(id)) onSearch(id);
  };
  return (
    <section aria-labelledby="events-h">
      <h2 id="events-h">Events of one request</h2>
      <form onSubmit={submit} role="search" aria-label="Events by request id">
        <label htmlFor="request-id">Request id</label>{" "}
        <input
          id="request-id"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          pattern={REQUEST_ID_PATTERN}
          required
          maxLength={128}
          spellCheck={false}
        />{" "}
        <button type="submit">Show events</button>
      </form>
      {events.error instanceof ProblemError && <ProblemNotice problem={events.error.problem} since={Date.now()} />}
      {requestId !== null && events.data && (
        <table>
          <caption>
            Events of request <code>{events.data.request_id}</code> from every service, oldest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Log</th>
              <th scope="col">Level</th>
              <th scope="col">Event</th>
            </tr>
          </thead>
          <tbody>
            {events.data.items.map((ev, i) => (
              <tr key={`${ev.ts}.${i}`}>
                <td>{ev.ts}</td>
                <td>{ev.dataset}</td>
                <td>{ev.level ?? ""}</td>
                <td>{ev.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {events.data && events.data.items.length === 0 && <p className="muted">No event with this request id yet.</p>}
    </section>
  );
}

export function AdminView() {
  const api = useApi();
  const [requestId, setRequestId] = useState<string | null>(null);
  const audit = useInfiniteQuery({
    queryKey: ["admin", "audit"],
    queryFn: ({ pageParam }) => api.labAudit(pageParam, LIMITS.pageSize),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const refusals = useQuery({ queryKey: ["admin", "refusals"], queryFn: () => api.edgeRefusals(), refetchInterval: 10_000 });
  const entries = audit.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <div className="admin">
      <section aria-labelledby="refusals-h">
        <h2 id="refusals-h">Latest edge refusals</h2>
        {refusals.error instanceof ProblemError && <ProblemNotice problem={refusals.error.problem} since={Date.now()} />}
        <table>
          <caption className="visually-hidden">Requests the edge refused, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Status</th>
              <th scope="col">Refused because</th>
              <th scope="col">Method and path</th>
              <th scope="col">Request id</th>
            </tr>
          </thead>
          <tbody>
            {(refusals.data?.items ?? []).map((r) => (
              <tr key={r.request_id}>
                <td>{r.ts}</td>
                <td>{r.status}</td>
                <td>{plainWords({ type: `${PROBLEM_PREFIX}${r.cause}`, title: "", status: r.status })}</td>
                <td>
                  {r.method} {r.path}
                </td>
                <td>
                  <button type="button" className="link-button" onClick={() => setRequestId(r.request_id)}
                    aria-label={`Events of request ${r.request_id}`}>
                    <code>{r.request_id}</code>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {refusals.data && refusals.data.items.length === 0 && <p className="muted">No refusal logged yet.</p>}
      </section>
      <RequestEvents requestId={requestId} onSearch={setRequestId} />
      <section aria-labelledby="audit-h">
        <h2 id="audit-h">Audit log</h2>
        {audit.error instanceof ProblemError && <ProblemNotice problem={audit.error.problem} since={Date.now()} />}
        <table>
          <caption className="visually-hidden">Audit entries of the lab and every tenant, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Where</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={`${e.scope}.${e.id}`}>
                <td>{e.ts}</td>
                <td>{e.scope}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>{e.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {audit.hasNextPage && (
          <button type="button" onClick={() => void audit.fetchNextPage()} disabled={audit.isFetchingNextPage}>
            Older entries
          </button>
        )}
      </section>
    </div>
  );
}
