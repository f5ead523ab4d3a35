/**
 * The browser test's partner page (bundled with esbuild, served from another origin than the
 * Worker): what the platform's `StatusBadge` and `UpgradeRequestForm` did against the service we
 * replaced, written with the typed client. Settings come from the page's `data-*` attributes.
 */
import { createStatusLevelsClient } from "../../../functions/client.ts";

const { api: apiUrl = "", org = "", token = "" } = document.body.dataset;
const api = createStatusLevelsClient(apiUrl, { token })["status-levels"];

const show = (id: string, text: string) => {
  document.getElementById(id)!.textContent = text;
};

/** StatusBadge: the current level and the level C progress the page has always read. */
async function showStatus(): Promise<void> {
  try {
    const res = await api.organizations[":id"].$get({ param: { id: org } });
    if (res.status !== 200) {
      show("level", `error ${res.status}: ${(await res.json()).detail}`);
      return;
    }
    const view = await res.json();
    show("level", `${view.current_level} (${view.visibility})`);
    show("review-count", view.level_c_progress ? String(view.level_c_progress.review_count) : "hidden");
    show("pending", view.pending_upgrade_request ? `${view.pending_upgrade_request.target_level} requested` : "none");
  } catch (error) {
    // A response the browser withheld (CORS) is a network error here.
    show("level", "blocked");
    show("error", String(error));
  }
}

/** UpgradeRequestForm: asks for the chosen level and shows the request the service created. */
document.getElementById("upgrade-form")!.addEventListener("submit", async (event) => {
  event.preventDefault();
  const targetLevel = (document.getElementById("target-level") as HTMLSelectElement).value as "B" | "C";
  try {
    const res = await api["upgrade-requests"].$post({ json: { organization_id: org, target_level: targetLevel } });
    if (res.status !== 201) {
      show("request-error", `${res.status}: ${(await res.json()).detail}`);
      return;
    }
    const request = await res.json();
    show("request-target-level", request.target_level);
    show("request-status", request.status);
    await showStatus();
  } catch (error) {
    show("request-error", String(error));
  }
});

void showStatus();
