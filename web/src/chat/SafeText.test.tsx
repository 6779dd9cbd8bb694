import { render } from "@testing-library/react";

import { safeHref, SafeText } from "./SafeText";

const PAYLOADS = [
  "<script>window.__xss = 1</script>",
  '<img src=x onerror="window.__xss=1">',
  '<a href="javascript:alert(1)">click</a>',
  "[click](javascript:alert(1))",
  "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  '"><svg onload=alert(1)>',
];

describe("SafeText renders model output as text", () => {
  it.each(PAYLOADS)("keeps %s as visible text, creating no element from it", (payload) => {
    const { container } = render(<SafeText text={payload} />);
    expect(container.querySelector("script, img, svg, iframe, object")).toBeNull();
    for (const a of container.querySelectorAll("a")) expect(a.getAttribute("href")).toMatch(/^https?:/);
    // The exact characters are visible (nothing was stripped either: the reader sees the attack).
    expect(container.textContent).toContain(payload);
  });

  it("links http(s) URLs only, with rel=noopener noreferrer nofollow and a new tab", () => {
    const { container } = render(<SafeText text={"see [docs](https://example.org/a) or http://x.test/b."} />);
    const links = [...container.querySelectorAll("a")];
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://example.org/a", "http://x.test/b"]);
    for (const a of links) {
      expect(a.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(a.getAttribute("target")).toBe("_blank");
    }
    expect(container.textContent).toContain("http://x.test/b.");
  });

  it("renders code blocks, inline code and bold as elements holding text", () => {
    const { container } = render(<SafeText text={"**bold** and `a<b>`\n\n```\n<b>x</b>\n```"} />);
    expect(container.querySelector("strong")?.textContent).toBe("bold");
    expect(container.querySelector("p code")?.textContent).toBe("a<b>");
    expect(container.querySelector("pre code")?.textContent).toBe("<b>x</b>");
    expect(container.querySelector("pre b")).toBeNull();
  });

  it("refuses javascript:, data:, vbscript: and relative URLs as links", () => {
    for (const u of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "vbscript:x", "/relative", " javascript:x"]) {
      expect(safeHref(u)).toBeNull();
    }
    expect(safeHref("https://example.org/")).toBe("https://example.org/");
  });
});
