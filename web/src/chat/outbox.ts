/** Messages this page sent and has not yet seen in the server's history: shown at once ("pending"),
 *  updated from the send's answer and the message's events. Pure functions, tested on their own. */
import type { Problem } from "@/api/problems";
import type { Message } from "@/api/types";

export type OutboxState = "sending" | "pending" | "answered" | "failed" | "blocked";

export interface OutboxItem {
  /** The Idempotency-Key of the send: also the item's identity (a retry reuses it). */
  key: string;
  conversationId: string;
  content: string;
  state: OutboxState;
  message?: Message;
  reply?: Message | null;
  problem?: Problem;
  problemAt?: number;
  sentAt: number;
  answeredAt?: number;
}

export function stateOf(message: Message, reply: Message | null | undefined): OutboxState {
  if (reply) return "answered";
  if (message.status === "blocked" || message.guard?.decision === "block") return "blocked";
  if (message.status === "failed") return "failed";
  if (message.status === "answered") return "answered";
  return "pending";
}

/** Outbox items not yet in the server's history (by message id), in sending order. */
export function visibleOutbox(items: OutboxItem[], conversationId: string, serverIds: Set<string>): OutboxItem[] {
  return items
    .filter((i) => i.conversationId === conversationId)
    .filter((i) => !(i.message && serverIds.has(i.message.id) && (!i.reply || serverIds.has(i.reply.id))))
    .sort((a, b) => a.sentAt - b.sentAt);
}
