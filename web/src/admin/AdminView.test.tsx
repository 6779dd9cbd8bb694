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

  it("shows one request's events from every service, by clicking a refusal's id or by searching an id", async () => {
    const rid = "rid-waf-123456";
    const api = fakeFetch([
      ["GET /api/v1/conversations", () => json(200, { items: [], next_cursor: null })],
      ["GET /api/v1/admin/audit", () => json(200, { items: [], next_cursor: null })],
      [
        "GET /api/v1/admin/edge-refusals",
        () => json(200, { items: [{ ts: "2026-01-01T00:00:00Z", request_id: rid, status: 403, cause: "waf-blocked", method: "POST", path: "/api/v1/x", client: "10.0.0.1" }] }),
      ],
      [
        "GET /api/v1/admin/request-events",
        (c) =>
          c.path.includes("request_id=rid-down-0001")
            ? json(503, { type: "urn:seclab:problem:upstream-unavailable", title: "A dependency is unavailable", status: 503 })
            : json(200, {
                request_id: new URL(c.path, "https://lab.test").searchParams.get("request_id"),
                items: [
                  { ts: "2026-01-01T00:00:00.100Z", dataset: "nginx.access", level: null, message: "POST /api/v1/x 403" },
                  { ts: "2026-01-01T00:00:00.200Z", dataset: "nginx.error", level: "warn", message: "ModSecurity: Access denied [id \"949110\"]" },
                ],
              }),
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
    await user.click(await screen.findByRole("button", { name: `Events of request ${rid}` }));
    const events = await screen.findByRole("table", { name: /from every service/ });
    const rows = within(events).getAllByRole("row").slice(1).map((r) => r.textContent);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain("nginx.access");
    expect(rows[1]).toContain("ModSecurity: Access denied");
    expect(api.calls.some((c) => c.path === `/api/v1/admin/request-events?request_id=${rid}`)).toBe(true);

    // A typed id: searched as typed; a malformed one never reaches the API.
    const before = api.calls.filter((c) => c.path.startsWith("/api/v1/admin/request-events")).length;
    const box = screen.getByLabelText("Request id");
    await user.type(box, "bad id!");
    await user.click(screen.getByRole("button", { name: "Show events" }));
    expect(api.calls.filter((c) => c.path.startsWith("/api/v1/admin/request-events"))).toHaveLength(before);
    await user.clear(box);
    await user.type(box, "rid-typed-0042");
    await user.click(screen.getByRole("button", { name: "Show events" }));
    expect(await screen.findByText("rid-typed-0042", { selector: "caption code" })).toBeInTheDocument();

    // The engine down: the API's 503 problem is shown, in plain words.
    await user.clear(box);
    await user.type(box, "rid-down-0001");
    await user.click(screen.getByRole("button", { name: "Show events" }));
    expect(await screen.findByRole("alert")).toBeInTheDocument();
  });

  it("is not offered to a plain user", async () => {
    vi.stubGlobal("fetch", fakeFetch([["GET /api/v1/conversations", () => json(200, { items: [], next_cursor: null })]]).impl);
    render(<Shell auth={new FakeAuth()}><ChatApp /></Shell>);
    await screen.findByRole("button", { name: "Log out" });
    expect(screen.queryByRole("button", { name: "Lab admin" })).toBeNull();
  });
});
