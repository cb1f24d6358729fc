// The frontend's check, with nothing but node: every script parses (`node --check`), and every asset index.html
// references exists. Run from frontend/: `node tools/check.mjs`. Exit 1 on any finding.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const sources = readdirSync("src").filter((f) => /\.m?js$/.test(f));
const scripts = ["build.mjs", "tools/check.mjs", ...sources.map((f) => join("src", f))];
const findings = [];
for (const file of scripts) {
  const checked = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
  if (checked.status !== 0) findings.push(`${file}: ${checked.stderr.trim().split("\n").slice(0, 3).join(" ")}`);
}
const html = readFileSync(join("src", "index.html"), "utf8");
for (const [, ref] of html.matchAll(/(?:src|href)="\.\/([^"]+)"/g)) {
  if (!existsSync(join("src", ref))) findings.push(`src/index.html references ./${ref}, which does not exist`);
}
console.log(findings.length ? findings.join("\n") : `${scripts.length} script(s) parse, index.html references resolve`);
process.exit(findings.length ? 1 : 0);
