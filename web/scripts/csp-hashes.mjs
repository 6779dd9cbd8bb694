#!/usr/bin/env node
// Hash every inline script of the static export (CSP Level 3 'sha256-...' sources), so the edge's
// Content-Security-Policy allows exactly those scripts and nothing injected: no 'unsafe-inline' and
// no 'unsafe-eval' (OWASP ASVS 4.0.3 V14.4.3; CSP3 hash-source). Writes <out>/.seclab-csp.json:
//   {"script_hashes": ["'sha256-...'", ...], "pages": {"/index.html": n, ...}}
// and FAILS the build on what a hash cannot cover: inline event handlers (on*=), javascript: URLs,
// inline <style> or style="" attributes (the CSP has no 'unsafe-inline' for styles either).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const out = process.argv[2] ?? "out";

function* htmlFiles(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* htmlFiles(p);
    else if (name.endsWith(".html")) yield p;
  }
}

// Scripts a browser executes: no type, or a JavaScript MIME type, or module. JSON data blocks
// (type="application/json") are not executed, so CSP does not apply to them.
const EXEC_TYPES = new Set(["", "text/javascript", "application/javascript", "module"]);
const SCRIPT = /<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi;
const ATTR = (name) => new RegExp(`\\b${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, "i");

const hashes = new Set();
const pages = {};
const problems = [];
for (const file of htmlFiles(out)) {
  const html = readFileSync(file, "utf8");
  const page = "/" + relative(out, file);
  let n = 0;
  for (const m of html.matchAll(SCRIPT)) {
    const attrs = m[1] ?? "";
    if (ATTR("src").test(attrs)) continue;
    const t = ATTR("type").exec(attrs);
    const type = (t ? t[1] ?? t[2] ?? t[3] ?? "" : "").trim().toLowerCase();
    if (!EXEC_TYPES.has(type)) continue;
    hashes.add(`'sha256-${createHash("sha256").update(m[2] ?? "", "utf8").digest("base64")}'`);
    n += 1;
  }
  pages[page] = n;
  const withoutScripts = html.replace(SCRIPT, "");
  if (/<[^>]+\son[a-z]+\s*=/i.test(withoutScripts)) problems.push(`${page}: inline event handler attribute`);
  if (/javascript:/i.test(withoutScripts)) problems.push(`${page}: javascript: URL`);
  if (/<style\b/i.test(withoutScripts)) problems.push(`${page}: inline <style> element`);
  if (/<[^>]+\sstyle\s*=/i.test(withoutScripts)) problems.push(`${page}: style="" attribute`);
}
if (Object.keys(pages).length === 0) problems.push(`${out}: no HTML page found (did next build run?)`);
if (problems.length > 0) {
  console.error("csp-hashes: the export needs what a strict CSP forbids:\n  " + problems.join("\n  "));
  process.exit(1);
}
const result = { script_hashes: [...hashes].sort(), pages };
writeFileSync(join(out, ".seclab-csp.json"), JSON.stringify(result, null, 2) + "\n");
console.log(`csp-hashes: ${result.script_hashes.length} inline script hash(es) over ${Object.keys(pages).length} page(s)`);
