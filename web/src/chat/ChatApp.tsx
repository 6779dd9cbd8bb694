"use client";
/** The signed-in chat: conversations on one side, the selected conversation on the other. */
import { useState } from "react";

import { ConversationList } from "./ConversationList";
import { ConversationView } from "./ConversationView";

export function ChatApp() {
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <div className="chat">
      <ConversationList selected={selected} onSelect={setSelected} />
      {selected ? (
        <ConversationView key={selected} conversationId={selected} />
      ) : (
        <section className="conversation-view empty" aria-label="Conversation">
          <p>Pick a conversation or start a new one.</p>
        </section>
      )}
    </div>
  );
}
