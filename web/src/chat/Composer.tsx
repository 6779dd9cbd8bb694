"use client";
/** The message box: a textbox named "Message" and a button named "Send". Enter sends, Shift+Enter
 *  adds a line. Limits are checked before sending (the API checks them again). */
import { useId, useState, type FormEvent, type KeyboardEvent } from "react";

import { LIMITS, messageError } from "@/api/limits";

export function Composer({
  onSend,
  disabledReason,
}: {
  onSend: (text: string) => Promise<unknown>;
  disabledReason?: string | null;
}) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const errId = useId();
  const hintId = useId();
  const count = [...text].length;

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    if (busy || disabledReason) return;
    const why = messageError(text);
    setError(why);
    if (why) return;
    const sent = text;
    setText("");
    setBusy(true);
    try {
      await onSend(sent);
    } finally {
      setBusy(false);
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) void submit(e);
  }

  return (
    <form className="composer" onSubmit={submit} noValidate>
      <label htmlFor="message-box" className="visually-hidden">
        Message
      </label>
      <textarea
        id="message-box"
        name="message"
        rows={3}
        value={text}
        placeholder="Ask something… (Enter sends, Shift+Enter for a new line)"
        aria-invalid={error ? true : undefined}
        aria-describedby={`${hintId}${error ? ` ${errId}` : ""}`}
        onChange={(e) => {
          setText(e.target.value);
          if (error) setError(null);
        }}
        onKeyDown={onKeyDown}
      />
      <div className="composer-row">
        <span id={hintId} className={count > LIMITS.messageMaxChars ? "counter over" : "counter"}>
          {count} / {LIMITS.messageMaxChars}
        </span>
        {error && (
          <span id={errId} className="field-error" role="alert">
            {error}
          </span>
        )}
        {disabledReason && <span className="field-hint">{disabledReason}</span>}
        <button type="submit" disabled={busy || Boolean(disabledReason)}>
          Send
        </button>
      </div>
    </form>
  );
}
