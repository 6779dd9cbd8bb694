// The chat page is a static export (`out/`): nginx serves it beside the API on one origin, so no
// Node.js server runs on the lab host and the page needs no CORS (OWASP ASVS 4.0.3 V14.5.3).
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** A build id from the sources: the same sources give the same files, hence the same script hashes
 *  in the CSP, so a second `./lab up` changes nothing (idempotence). */
function sourceHash() {
  const h = createHash("sha256");
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(p).update(readFileSync(p));
    }
  };
  walk("src");
  for (const f of ["package-lock.json", "next.config.mjs", "openapi.json"]) h.update(f).update(readFileSync(f));
  for (const [k, v] of Object.entries(process.env).filter(([k]) => k.startsWith("NEXT_PUBLIC_")).sort()) {
    h.update(`${k}=${v}`);
  }
  return h.digest("hex").slice(0, 20);
}

/** @type {import('next').NextConfig} */
const nextConfig = {
  output: "export",
  // /callback -> callback.html; nginx tries $uri.html (no trailing-slash redirects to another URL).
  trailingSlash: false,
  reactStrictMode: true,
  poweredByHeader: false,
  // No source maps on the lab host: they would publish the sources for nothing.
  productionBrowserSourceMaps: false,
  images: { unoptimized: true },
  generateBuildId: async () => sourceHash(),
  eslint: { ignoreDuringBuilds: true },
};

export default nextConfig;
