"use client";
/** The lab-admin page: the audit log (every tenant's and the lab's, newest first, paged) and the
 *  edge's latest refusals with their request ids, to follow the attack/defence demo in the browser. */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";

import { useApi } from "@/api/context";
import { LIMITS } from "@/api/limits";
import { plainWords, ProblemError, PROBLEM_PREFIX } from "@/api/problems";

import { ProblemNotice } from "@/chat/ProblemNotice";

export function AdminView() {
  const api = useApi();
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
                  <code>{r.request_id}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {refusals.data && refusals.data.items.length === 0 && <p className="muted">No refusal logged yet.</p>}
      </section>
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
