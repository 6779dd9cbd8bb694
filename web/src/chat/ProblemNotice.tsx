"use client";
/** A refusal in plain words, with what the person can do: wait (Retry-After countdown), or quote the
 *  request id (WAF false positive). role="alert" so screen readers hear it at once. */
import { useEffect, useState } from "react";

import { cause, plainWords, type Problem } from "@/api/problems";

export function useCountdown(seconds: number | undefined, since: number): number {
  const [left, setLeft] = useState(() => remaining(seconds, since));
  useEffect(() => {
    setLeft(remaining(seconds, since));
    if (!seconds) return;
    const t = setInterval(() => {
      const r = remaining(seconds, since);
      setLeft(r);
      if (r <= 0) clearInterval(t);
    }, 250);
    return () => clearInterval(t);
  }, [seconds, since]);
  return left;
}

function remaining(seconds: number | undefined, since: number): number {
  if (!seconds) return 0;
  return Math.max(0, Math.ceil(seconds - (Date.now() - since) / 1000));
}

export function ProblemNotice({ problem, since, onDismiss }: { problem: Problem; since: number; onDismiss?: () => void }) {
  const left = useCountdown(problem.retryAfterS, since);
  const c = cause(problem);
  return (
    <div role="alert" className={`notice notice-${c}`} data-problem={c}>
      <p className="notice-words">{plainWords(problem)}</p>
      {c === "prompt-injection" && problem.guard && problem.guard.reasons.length > 0 && (
        <p className="notice-detail">Why: {problem.guard.reasons.join("; ")}</p>
      )}
      {c === "validation" && problem.detail && <p className="notice-detail">{problem.detail}</p>}
      {problem.retryAfterS !== undefined && problem.retryAfterS > 0 && (
        <p className="notice-wait" aria-live="off">
          {left > 0 ? `You can try again in ${left} s.` : "You can try again now."}
        </p>
      )}
      {problem.request_id && (
        <p className="notice-id">
          Request id: <code>{problem.request_id}</code>
          {c === "waf-blocked" && " (quote it to the lab's operator if this was a legitimate message)"}
        </p>
      )}
      {onDismiss && (
        <button type="button" className="link-button" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}
