import { screen, render, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { Shell } from "@/app/Shell";
import { ChatApp } from "@/chat/ChatApp";
import { FakeAuth, fakeFetch, json } from "@/test/fakes";

const entry = (id: number, action: string) => ({
  scope: "tenant_acme", id, ts: `2026-01-01T00:00:0${id}Z`, actor: "alice", action, target: "t", detail: "{}",
});

afterEach(() => vi.unstubAllGlobals());

describe("the lab-admin page", () => {
  it("is offered to lab-admins only, shows refusals with request ids and pages the audit log", async () => {
    const api = fakeFetch([
      ["GET /api/v1/conversations", () => json(200, { items: [], next_cursor: null })],
      [
        "GET /api/v1/admin/audit",
        (c) =>
          c.path.includes("cursor=")
            ? json(200, { items: [entry(1, "conversation.create")], next_cursor: null })
            : json(200, { items: [entry(2, "message.blocked")], next_cursor: "djE6MS4y" }),
      ],
      [
        "GET /api/v1/admin/edge-refusals",
        () => json(200, { items: [{ ts: "2026-01-01T00:00:00Z", request_id: "rid-waf-123456", status: 403, cause: "waf-blocked", method: "POST", path: "/api/v1/x", client: "10.0.0.1" }] }),
      ],
    ]);
    vi.stubGlobal("fetch", api.impl);
    const user = userEvent.setup();
    render(
      <Shell auth={new FakeAuth({ kind: "signed-in", user: { username: "admin", tenant: null, roles: ["lab-admin"] } })}>
        <ChatApp />
      </Shell>,
    );
    await user.click(await screen.findByRole("button", { name: "Lab admin" }));
    const refusals = await screen.findByRole("table", { name: /refused/ });
    expect(await within(refusals).findByText("rid-waf-123456")).toBeInTheDocument();
    expect(within(refusals).getByText(/web application firewall/)).toBeInTheDocument();
    const audit = screen.getByRole("table", { name: /Audit entries/ });
    expect(await within(audit).findByText("message.blocked")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Older entries" }));
    expect(await within(audit).findByText("conversation.create")).toBeInTheDocument();
    const rows = within(audit).getAllByRole("row").slice(1).map((r) => r.textContent);
    expect(rows[0]).toContain("message.blocked");
    expect(rows[1]).toContain("conversation.create");
  });

  it("is not offered to a plain user", async () => {
    vi.stubGlobal("fetch", fakeFetch([["GET /api/v1/conversations", () => json(200, { items: [], next_cursor: null })]]).impl);
    render(<Shell auth={new FakeAuth()}><ChatApp /></Shell>);
    await screen.findByRole("button", { name: "Log out" });
    expect(screen.queryByRole("button", { name: "Lab admin" })).toBeNull();
  });
});
