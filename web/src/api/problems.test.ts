import { cause, parseRetryAfter, plainWords, problemFrom, PROBLEM_PREFIX } from "./problems";

describe("problems", () => {
  it("says every known refusal in plain words", () => {
    for (const [c, words] of [
      ["rate-limited", /slow down/],
      ["budget-exhausted", /budget/],
      ["prompt-injection", /prompt-injection/],
      ["waf-blocked", /firewall/],
      ["unauthenticated", /log in/],
    ] as const) {
      expect(plainWords({ type: PROBLEM_PREFIX + c, title: "x", status: 400 })).toMatch(words);
    }
    expect(plainWords({ type: "about:blank", title: "x", status: 418 })).toBe("The request failed (418).");
  });

  it("reads problem+json with Retry-After and the request id", async () => {
    const res = new Response(
      JSON.stringify({ type: PROBLEM_PREFIX + "rate-limited", title: "Too many", status: 429, request_id: "req-12345678" }),
      { status: 429, headers: { "Content-Type": "application/problem+json", "Retry-After": "7" } },
    );
    const p = await problemFrom(res);
    expect(cause(p)).toBe("rate-limited");
    expect(p.retryAfterS).toBe(7);
    expect(p.request_id).toBe("req-12345678");
  });

  it("types a non-JSON failure by its status and keeps the edge's X-Request-ID", async () => {
    const res = new Response("<html>bad gateway</html>", {
      status: 502,
      headers: { "Content-Type": "text/html", "X-Request-ID": "edge-abcdefgh" },
    });
    const p = await problemFrom(res);
    expect(cause(p)).toBe("upstream-unavailable");
    expect(p.request_id).toBe("edge-abcdefgh");
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("12")).toBe(12);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
