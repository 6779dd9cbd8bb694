"use client";
/** One conversation: its history (oldest first, cursor paging), the messages being sent, the box. */
import { useInfiniteQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";

import { useApi } from "@/api/context";
import { LIMITS } from "@/api/limits";
import { ProblemError, type Problem } from "@/api/problems";

import { Composer } from "./Composer";
import { MessageItem } from "./MessageItem";
import { visibleOutbox } from "./outbox";
import { ProblemNotice, useCountdown } from "./ProblemNotice";
import { useSend } from "./useSend";

export function ConversationView({ conversationId }: { conversationId: string }) {
  const api = useApi();
  const { items, send, retry } = useSend();
  const [problem, setProblem] = useState<{ p: Problem; at: number } | null>(null);
  const wait = useCountdown(problem?.p.retryAfterS, problem?.at ?? 0);

  const history = useInfiniteQuery({
    queryKey: ["messages", conversationId],
    queryFn: ({ pageParam }) => api.listMessages(conversationId, pageParam, LIMITS.pageSize),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });

  useEffect(() => setProblem(null), [conversationId]);

  const stored = history.data?.pages.flatMap((p) => p.items) ?? [];
  const ids = new Set(stored.map((m) => m.id));
  const outbox = visibleOutbox(items, conversationId, ids);
  const lastFailed = [...outbox].reverse().find((i) => i.state === "failed" && i.problem);

  async function onSend(text: string) {
    const p = await send(conversationId, text);
    setProblem(p ? { p, at: Date.now() } : null);
  }

  return (
    <section className="conversation-view" aria-label="Conversation">
      {history.error instanceof ProblemError && <ProblemNotice problem={history.error.problem} since={Date.now()} />}
      <ul className="messages" aria-label="Messages" aria-live="polite" aria-relevant="additions text">
        {stored.map((m) => (
          <MessageItem key={m.id} role={m.role} content={m.content} message={m} />
        ))}
        {outbox.map((i) => [
          <MessageItem key={i.key} role="user" content={i.content} message={i.message} state={i.state} />,
          i.reply ? <MessageItem key={`${i.key}.r`} role="assistant" content={i.reply.content} message={i.reply} /> : null,
        ])}
      </ul>
      {history.isPending && <p className="muted">Loading messages…</p>}
      {!history.isPending && stored.length === 0 && outbox.length === 0 && (
        <p className="muted">No message yet: say hello.</p>
      )}
      {history.hasNextPage && (
        <button type="button" className="link-button" onClick={() => void history.fetchNextPage()} disabled={history.isFetchingNextPage}>
          Show later messages
        </button>
      )}
      {problem && <ProblemNotice problem={problem.p} since={problem.at} onDismiss={() => setProblem(null)} />}
      {lastFailed && lastFailed.problem && lastFailed.state === "failed" && !problem?.p.retryAfterS && (
        <button type="button" onClick={() => void retry(lastFailed.key).then((p) => setProblem(p ? { p, at: Date.now() } : null))}>
          Retry sending
        </button>
      )}
      <Composer onSend={onSend} disabledReason={wait > 0 ? `Wait ${wait} s before sending again.` : null} />
    </section>
  );
}
