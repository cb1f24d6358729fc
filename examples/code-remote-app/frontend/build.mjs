// Builds dist/ from src/ with no dependencies: `npm run build` (or `node build.mjs`).
//
//   dist/index.html                  references assets by relative, content-hashed names
//   dist/assets/app.<hash>.js        <hash> = first 10 hex chars of sha256(file content)
//   dist/assets/style.<hash>.css
//
// Environment-neutral by default: the deploy writes dist/config.json ({release, apiUrl, env, commit})
// beside index.html, and app.js reads it. Build-time mode: if APP_RELEASE and/or API_URL are set, they are
// embedded as <meta name="app-release"> / <meta name="api-url"> (app.js still prefers config.json).
// Deterministic: no timestamps, so two builds of the same source and env are byte-identical.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const srcDir = join(root, "src");
const outDir = join(root, "dist");
const ASSETS = [
  ["app", "js"],
  ["style", "css"],
];
const BUILD_META = [
  ["app-release", "APP_RELEASE"],
  ["api-url", "API_URL"],
];

const contentHash = (bytes) => createHash("sha256").update(bytes).digest("hex").slice(0, 10);
const escapeAttr = (value) =>
  value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

rmSync(outDir, { recursive: true, force: true });
mkdirSync(join(outDir, "assets"), { recursive: true });

let html = readFileSync(join(srcDir, "index.html"), "utf8");
const written = [];
for (const [name, ext] of ASSETS) {
  const bytes = readFileSync(join(srcDir, `${name}.${ext}`));
  const hashed = `assets/${name}.${contentHash(bytes)}.${ext}`;
  const reference = `"./${name}.${ext}"`;
  if (!html.includes(reference)) throw new Error(`src/index.html does not reference ${reference}`);
  html = html.replaceAll(reference, `"${hashed}"`);
  writeFileSync(join(outDir, hashed), bytes);
  written.push([hashed, bytes.length]);
}

const meta = BUILD_META.filter(([, envVar]) => process.env[envVar]).map(
  ([name, envVar]) => `<meta name="${name}" content="${escapeAttr(process.env[envVar])}">`,
);
html = html.replace(/^([ \t]*)<!-- build-meta -->\n/m, (_, indent) =>
  meta.map((tag) => `${indent}${tag}\n`).join(""),
);
writeFileSync(join(outDir, "index.html"), html);
written.unshift(["index.html", Buffer.byteLength(html)]);

for (const [path, size] of written) console.log(`dist/${path}  ${size} B`);
console.log(meta.length ? `build-time values embedded: ${meta.length}` : "environment-neutral build");
