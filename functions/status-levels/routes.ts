import { createApi } from "../_shared/api.ts";
import { checkResponses } from "../_shared/response-check.ts";
import { listEmailOutbox } from "./admin/list-email-outbox.ts";
import { listLevelCAtRisk } from "./admin/list-level-c-at-risk.ts";
import { listPendingUpgradeRequests } from "./admin/list-pending-upgrade-requests.ts";
import { runDailyJobNow } from "./admin/run-daily-job.ts";
import { getBadge } from "./badge/get-badge.ts";
import { serveDocs } from "./docs/get-docs.ts";
import { getHealth } from "./get-health.ts";
import { getLevelCatalog } from "./levels/get-level-catalog.ts";
import { listNotifications, markNotificationsRead } from "./notifications/notifications.ts";
import { describeApi } from "./openapi/get-openapi-document.ts";
import { getEligibility } from "./organizations/get-eligibility.ts";
import { getOrganizationStatus } from "./organizations/get-organization-status.ts";
import { getStatusHistory } from "./organizations/get-status-history.ts";
import { grantStatusLevel } from "./organizations/grant-status-level.ts";
import { listOrganizationUpgradeRequests } from "./organizations/list-organization-upgrade-requests.ts";
import { renewStatusLevelB } from "./organizations/renew-status-level-b.ts";
import { revokeStatusLevel } from "./organizations/revoke-status-level.ts";
import { updateStatusValidity } from "./organizations/update-status-validity.ts";
import { postSubscriptionEvent } from "./subscriptions/post-subscription-event.ts";
import { createUpgradeRequest } from "./upgrade-requests/create-upgrade-request.ts";
import { approveUpgradeRequest, cancelUpgradeRequest, rejectUpgradeRequest } from "./upgrade-requests/decide-upgrade-request.ts";

export const basePath = "/status-levels";

/**
 * Every endpoint under /status-levels, in the order the OpenAPI document lists them. Chained, so
 * the app's type carries every route (the typed client in functions/client.ts reads it).
 */
export function createStatusLevelsApi() {
  const api = createApi();
  api.use("*", checkResponses(api, basePath));
  const routes = api
    .route("/", getOrganizationStatus)
    .route("/", getEligibility)
    .route("/", getStatusHistory)
    .route("/", grantStatusLevel)
    .route("/", revokeStatusLevel)
    .route("/", renewStatusLevelB)
    .route("/", updateStatusValidity)
    .route("/", listOrganizationUpgradeRequests)
    .route("/", createUpgradeRequest)
    .route("/", cancelUpgradeRequest)
    .route("/", approveUpgradeRequest)
    .route("/", rejectUpgradeRequest)
    .route("/", listPendingUpgradeRequests)
    .route("/", listLevelCAtRisk)
    .route("/", postSubscriptionEvent)
    .route("/", listNotifications)
    .route("/", markNotificationsRead)
    .route("/", runDailyJobNow)
    .route("/", listEmailOutbox)
    .route("/", getLevelCatalog)
    .route("/", getBadge)
    .route("/", getHealth);
  describeApi(routes);
  serveDocs(routes);
  return routes;
}
