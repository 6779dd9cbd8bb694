"use client";
/** The caller's conversations (newest first, cursor paging) and the form for a new one. */
import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { useApi } from "@/api/context";
import { LIMITS, titleError } from "@/api/limits";
import { ProblemError, type Problem } from "@/api/problems";
import type { Conversation } from "@/api/types";

import { ProblemNotice } from "./ProblemNotice";

export function ConversationList({ selected, onSelect }: { selected: string | null; onSelect: (id: string) => void }) {
  const api = useApi();
  const qc = useQueryClient();
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [problem, setProblem] = useState<{ p: Problem; at: number } | null>(null);

  const list = useInfiniteQuery({
    queryKey: ["conversations"],
    queryFn: ({ pageParam }) => api.listConversations(pageParam, LIMITS.pageSize),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });

  const create = useMutation({
    mutationFn: (t: string) => api.createConversation({ title: t }),
    onSuccess: (c: Conversation) => {
      setTitle("");
      setProblem(null);
      void qc.invalidateQueries({ queryKey: ["conversations"] });
      onSelect(c.id);
    },
    onError: (err) => err instanceof ProblemError && setProblem({ p: err.problem, at: Date.now() }),
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    const t = title.trim() || `Conversation ${new Date().toLocaleString()}`;
    const why = titleError(t);
    setError(why);
    if (!why) create.mutate(t);
  }

  const conversations = list.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <nav className="conversations" aria-label="Conversations">
      <form className="new-conversation" onSubmit={submit} noValidate>
        <label htmlFor="conversation-title">Title</label>
        <input
          id="conversation-title"
          value={title}
          maxLength={LIMITS.titleMaxChars}
          aria-invalid={error ? true : undefined}
          onChange={(e) => setTitle(e.target.value)}
        />
        <button type="submit" disabled={create.isPending}>
          New conversation
        </button>
        {error && (
          <span className="field-error" role="alert">
            {error}
          </span>
        )}
      </form>
      {problem && <ProblemNotice problem={problem.p} since={problem.at} />}
      {list.error instanceof ProblemError && <ProblemNotice problem={list.error.problem} since={Date.now()} />}
      {list.isPending ? (
        <p className="muted">Loading conversations…</p>
      ) : conversations.length === 0 ? (
        <p className="muted">No conversation yet.</p>
      ) : (
        <ul className="conversation-list" aria-label="Your conversations">
          {conversations.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                className="conversation"
                aria-current={c.id === selected ? "true" : undefined}
                onClick={() => onSelect(c.id)}
              >
                {c.title || "(untitled)"}
              </button>
            </li>
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <button type="button" className="link-button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          More conversations
        </button>
      )}
    </nav>
  );
}
