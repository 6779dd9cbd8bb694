"use client";
/** Sending a message: pending at once, an Idempotency-Key per message (a retry reuses it, so the API
 *  stores it once), the reply followed live over the message's SSE stream, refusals kept with words. */
import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";

import { newIdempotencyKey } from "@/api/client";
import { useApi } from "@/api/context";
import { cause, ProblemError, type Problem } from "@/api/problems";
import type { Exchange } from "@/api/types";

import { stateOf, type OutboxItem } from "./outbox";

/** Transient failures retried automatically with the same key (the network, the edge's 502/503). */
const RETRYABLE = new Set(["network", "upstream-unavailable"]);
const AUTO_RETRIES = 2;

export function useSend() {
  const api = useApi();
  const qc = useQueryClient();
  const [items, setItems] = useState<OutboxItem[]>([]);
  const aborts = useRef(new Set<AbortController>());

  useEffect(() => {
    const set = aborts.current;
    return () => set.forEach((a) => a.abort());
  }, []);

  const patch = useCallback((key: string, p: Partial<OutboxItem>) => {
    setItems((xs) => xs.map((x) => (x.key === key ? { ...x, ...p } : x)));
  }, []);

  const applyExchange = useCallback(
    (key: string, ex: Exchange) => {
      const state = stateOf(ex.message, ex.reply);
      patch(key, { message: ex.message, reply: ex.reply, state, ...(ex.reply ? { answeredAt: performance.now() } : {}) });
    },
    [patch],
  );

  const follow = useCallback(
    async (key: string, conversationId: string, messageId: string) => {
      const ctl = new AbortController();
      aborts.current.add(ctl);
      try {
        await api.followMessage(conversationId, messageId, (ex) => applyExchange(key, ex), ctl.signal);
      } catch (err) {
        if (err instanceof ProblemError) patch(key, { problem: err.problem, problemAt: Date.now() });
      } finally {
        aborts.current.delete(ctl);
        void qc.invalidateQueries({ queryKey: ["messages", conversationId] });
      }
    },
    [api, applyExchange, patch, qc],
  );

  const attempt = useCallback(
    async (item: OutboxItem): Promise<Problem | null> => {
      for (let n = 0; ; n++) {
        try {
          const res = await api.sendMessage(item.conversationId, { content: item.content }, item.key);
          applyExchange(item.key, res.exchange);
          if (res.status === 202 && !res.exchange.reply) {
            void follow(item.key, item.conversationId, res.exchange.message.id);
          } else {
            void qc.invalidateQueries({ queryKey: ["messages", item.conversationId] });
          }
          void qc.invalidateQueries({ queryKey: ["conversations"] });
          return null;
        } catch (err) {
          if (!(err instanceof ProblemError)) throw err;
          const p = err.problem;
          if (RETRYABLE.has(cause(p)) && n < AUTO_RETRIES && !p.message_id) {
            await new Promise((r) => setTimeout(r, 500 * (n + 1)));
            continue;
          }
          const blocked = cause(p) === "prompt-injection";
          patch(item.key, {
            state: blocked ? "blocked" : "failed",
            problem: p,
            problemAt: Date.now(),
            ...(blocked && p.guard
              ? {
                  message: {
                    id: String(p.message_id ?? item.key),
                    conversation_id: item.conversationId,
                    role: "user",
                    content: item.content,
                    content_type: "text/plain",
                    guard: { decision: p.guard.decision as "block", reasons: p.guard.reasons },
                    status: "blocked",
                    created_at: new Date().toISOString(),
                  },
                }
              : {}),
          });
          return p;
        }
      }
    },
    [api, applyExchange, follow, patch, qc],
  );

  /** Send new text; resolves with the refusal, if any. */
  const send = useCallback(
    (conversationId: string, content: string) => {
      const item: OutboxItem = {
        key: newIdempotencyKey(),
        conversationId,
        content,
        state: "sending",
        sentAt: performance.now(),
      };
      setItems((xs) => [...xs, item]);
      return attempt(item);
    },
    [attempt],
  );

  /** Retry a failed send with its ORIGINAL key: the API returns the first result if it got it. */
  const retry = useCallback(
    (key: string) => {
      const item = items.find((x) => x.key === key);
      if (!item) return Promise.resolve(null);
      patch(key, { state: "sending", problem: undefined });
      return attempt({ ...item, state: "sending" });
    },
    [attempt, items, patch],
  );

  return { items, send, retry };
}
