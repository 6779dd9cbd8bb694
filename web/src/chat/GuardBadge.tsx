/** The prompt-injection guard's verdict on a user message, shown only when it is not plain "allow". */
import type { Guard } from "@/api/types";

const LABEL: Record<string, string> = { flag: "Flagged by the guard", block: "Blocked by the guard" };

export function GuardBadge({ guard }: { guard: Guard | null | undefined }) {
  if (!guard || guard.decision === "allow") return null;
  return (
    <span className={`badge badge-${guard.decision}`} data-guard={guard.decision}>
      {LABEL[guard.decision]}
      {guard.reasons.length > 0 && <span className="badge-reasons">: {guard.reasons.join("; ")}</span>}
    </span>
  );
}
