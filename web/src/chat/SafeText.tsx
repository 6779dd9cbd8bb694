/** Model output is untrusted (OWASP LLM05:2025 improper output handling): it is rendered as React
 *  text nodes through a small Markdown subset (paragraphs, code, bold, links), never as HTML. There
 *  is no HTML parser and no dangerouslySetInnerHTML, so `<script>` or `<img onerror>` stay text; a
 *  link is made only for http(s) URLs (no javascript:, data: or vbscript:), and it never carries the
 *  page's referrer or opener (rel="noopener noreferrer nofollow", ASVS 4.0.3 V5.3.3, V14.4.5). */
import type { ReactNode } from "react";

const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\[([^\]\n]{1,200})\]\(([^()\s]{1,2000})\))|(https?:\/\/[^\s<>()"']+)/g;

/** The URL if it is absolute http(s), else null (javascript:, data:, relative, garbage). */
export function safeHref(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return url.href;
}

function SafeLink({ href, children }: { href: string; children: ReactNode }) {
  return (
    <a href={href} target="_blank" rel="noopener noreferrer nofollow">
      {children}
    </a>
  );
}

function inline(text: string, key: string): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let n = 0;
  for (const m of text.matchAll(INLINE)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const k = `${key}.${n++}`;
    if (m[1]) out.push(<code key={k}>{m[1].slice(1, -1)}</code>);
    else if (m[2]) out.push(<strong key={k}>{m[2].slice(2, -2)}</strong>);
    else if (m[3]) {
      const href = safeHref(m[5] ?? "");
      out.push(href ? <SafeLink key={k} href={href}>{m[4]}</SafeLink> : m[0]);
    } else if (m[6]) {
      const trimmed = m[6].replace(/[.,;:!?]+$/, "");
      const href = safeHref(trimmed);
      out.push(href ? <SafeLink key={k} href={href}>{trimmed}</SafeLink> : trimmed);
      if (trimmed.length < m[6].length) out.push(m[6].slice(trimmed.length));
    }
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function paragraph(text: string, key: string): ReactNode {
  const lines = text.split("\n");
  return (
    <p key={key}>
      {lines.map((line, i) => (
        <span key={`${key}.l${i}`}>
          {i > 0 && <br />}
          {inline(line, `${key}.l${i}`)}
        </span>
      ))}
    </p>
  );
}

export function SafeText({ text }: { text: string }) {
  const blocks: ReactNode[] = [];
  const parts = text.replace(/\r\n?/g, "\n").split(/^```[^\n]*\n?/m);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      blocks.push(
        <pre key={`c${i}`}>
          <code>{part.replace(/\n$/, "")}</code>
        </pre>,
      );
      return;
    }
    part
      .split(/\n{2,}/)
      .filter((p) => p.trim() !== "")
      .forEach((p, j) => blocks.push(paragraph(p.replace(/^\n+|\n+$/g, ""), `p${i}.${j}`)));
  });
  return <div className="safe-text">{blocks}</div>;
}
