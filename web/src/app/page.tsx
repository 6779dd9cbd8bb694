"use client";
import { ChatApp } from "@/chat/ChatApp";

import { Shell } from "./Shell";

export default function Home() {
  return (
    <Shell>
      <ChatApp />
    </Shell>
  );
}
