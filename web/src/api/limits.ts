/** The API's input limits, mirrored so the page refuses before sending (the API checks again: the
 *  client-side check is for people, never a control). Values come from lab.yml through the web role
 *  (NEXT_PUBLIC_SECLAB_*), with the API models' defaults (app/models/api.py). */

function intEnv(value: string | undefined, fallback: number): number {
  const n = value ? Number.parseInt(value, 10) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

export const LIMITS = {
  /** lab.yml limits.message_max_chars (MessageCreate.content max_length). */
  messageMaxChars: intEnv(process.env.NEXT_PUBLIC_SECLAB_MESSAGE_MAX_CHARS, 16000),
  /** ConversationCreate.title max_length. */
  titleMaxChars: 200,
  /** lab.yml limits.page_size_default. */
  pageSize: intEnv(process.env.NEXT_PUBLIC_SECLAB_PAGE_SIZE, 20),
} as const;

const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why a message cannot be sent, or null. Length in UTF-16 code units would differ from Python's
 *  code points: count code points like the API does. */
export function messageError(text: string, max: number = LIMITS.messageMaxChars): string | null {
  if (text.trim().length === 0) return "Type a message first.";
  if (text.includes("\u0000")) return "The message contains a NUL character, which cannot be stored.";
  const n = [...text].length;
  if (n > max) return `The message is ${n} characters long; the limit is ${max}.`;
  return null;
}

/** Why a conversation title cannot be used, or null (one clean line, <= 200 characters). */
export function titleError(title: string, max: number = LIMITS.titleMaxChars): string | null {
  if (CONTROL.test(title)) return "A title is one line without control characters.";
  const n = [...title].length;
  if (n > max) return `The title is ${n} characters long; the limit is ${max}.`;
  return null;
}
