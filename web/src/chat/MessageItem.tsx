/** One message of the list: who, the text (user text as typed, model text through SafeText), the
 *  guard's verdict, and where a pending one stands. */
import type { Message } from "@/api/types";

import { GuardBadge } from "./GuardBadge";
import { SafeText } from "./SafeText";

const STATUS: Record<string, string> = {
  sending: "Sending…",
  pending: "Waiting for the answer…",
  failed: "Not answered",
  blocked: "Refused",
};

export function MessageItem({
  role,
  content,
  message,
  state,
}: {
  role: "user" | "assistant";
  content: string;
  message?: Message | undefined;
  state?: string | undefined;
}) {
  const withheld = role === "assistant" && message?.output_decision === "withhold";
  return (
    <li className={`message message-${role}`} data-state={state ?? message?.status ?? "stored"} data-role={role}>
      <span className="message-author">{role === "user" ? "You" : "Assistant"}</span>
      {role === "user" ? <p className="message-user-text">{content}</p> : <SafeText text={content} />}
      {role === "user" && <GuardBadge guard={message?.guard} />}
      {withheld && <span className="badge badge-flag">The answer was withheld by the output checks</span>}
      {role === "assistant" && message?.output_decision === "redact" && (
        <span className="badge badge-flag">Parts of the answer were redacted</span>
      )}
      {state && STATUS[state] && <span className="message-status">{STATUS[state]}</span>}
    </li>
  );
}
