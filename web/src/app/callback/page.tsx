"use client";
/** The registered redirect URI (lab.yml identity.redirect_uris): the same page; the auth module takes
 *  the code from the URL fragment and goes back to "/". */
import { ChatApp } from "@/chat/ChatApp";

import { Shell } from "../Shell";

export default function Callback() {
  return (
    <Shell>
      <ChatApp />
    </Shell>
  );
}
