import { readEvents, SseParser } from "./sse";

describe("SseParser", () => {
  const stream = 'retry: 2000\n\nid: m1\nevent: message\ndata: {"a":1}\n\n: keep-alive\n\nevent: done\ndata: {"status":"answered"}\n\n';

  it("parses the API's stream whatever the chunking", () => {
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const p = new SseParser();
      const got = [];
      for (let i = 0; i < stream.length; i += size) got.push(...p.feed(stream.slice(i, i + size)));
      expect(got).toEqual([
        { event: "message", data: '{"a":1}', id: "m1" },
        { event: "done", data: '{"status":"answered"}', id: "m1" },
      ]);
    }
  });

  it("joins multi-line data, handles CRLF and ignores comments", () => {
    const p = new SseParser();
    expect(p.feed("data: a\r\ndata: b\r\n\r\n: c\r\n\r\n")).toEqual([{ event: "message", data: "a\nb" }]);
  });

  it("reads a fetch body to its end, last event without a blank line included", async () => {
    const body = new Response("event: message\ndata: 1\n\nevent: done\ndata: 2").body!;
    const seen: string[] = [];
    await readEvents(body, (e) => seen.push(`${e.event}:${e.data}`));
    expect(seen).toEqual(["message:1", "done:2"]);
  });
});
