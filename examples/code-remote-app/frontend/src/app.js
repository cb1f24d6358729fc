// Reads the deploy-time config.json (relative: the site may live under a path prefix),
// else the build-time <meta> tags, then checks the API's /health.
const byId = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

async function loadConfig() {
  try {
    const response = await fetch("./config.json", { cache: "no-store" });
    if (response.ok) return { source: "config.json", ...(await response.json()) };
  } catch {
    // No config.json: a build-time bundle.
  }
  return { source: "build", release: meta("app-release"), apiUrl: meta("api-url") };
}

function showHealth(state, text) {
  byId("health-state").dataset.state = state;
  byId("health-state").textContent = state;
  if (text !== undefined) byId("health").textContent = text;
}

async function main() {
  const config = await loadConfig();
  byId("release").textContent = config.release || "unknown";
  byId("env").textContent = config.env || "unknown";
  byId("commit").textContent = config.commit || "unknown";
  byId("config-source").textContent = config.source;
  if (!config.apiUrl) return showHealth("unconfigured", "No API URL configured.");

  const url = `${config.apiUrl.replace(/\/+$/, "")}/health`;
  byId("health-url").textContent = url;
  try {
    const response = await fetch(url, { cache: "no-store" });
    const health = await response.json();
    const matches = !config.release || health.release === config.release;
    showHealth(response.ok && matches ? "ok" : "mismatch", JSON.stringify(health, null, 2));
  } catch (error) {
    showHealth("error", `API unreachable: ${error}`);
  }
}

main();
