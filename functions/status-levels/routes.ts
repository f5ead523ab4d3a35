import type { AnyRoute } from "../_shared/route.ts";
import { listPendingUpgradeRequests } from "./admin/list-pending-upgrade-requests.ts";
import { runDailyJobNow } from "./admin/run-daily-job.ts";
import { getBadge } from "./badge/get-badge.ts";
import { getHealth } from "./get-health.ts";
import { getLevelCatalog } from "./levels/get-level-catalog.ts";
import { listEmailOutbox, listNotifications, markNotificationsRead } from "./notifications/notifications.ts";
import { openApiRoute } from "./openapi/get-openapi-document.ts";
import { getEligibility } from "./organizations/get-eligibility.ts";
import { getOrganizationStatus } from "./organizations/get-organization-status.ts";
import { getStatusHistory } from "./organizations/get-status-history.ts";
import { grantStatusLevel } from "./organizations/grant-status-level.ts";
import { listOrganizationUpgradeRequests } from "./organizations/list-organization-upgrade-requests.ts";
import { renewStatusLevelB } from "./organizations/renew-status-level-b.ts";
import { postSubscriptionEvent } from "./subscriptions/post-subscription-event.ts";
import { revokeStatusLevel } from "./organizations/revoke-status-level.ts";
import { updateStatusValidity } from "./organizations/update-status-validity.ts";
import { createUpgradeRequest } from "./upgrade-requests/create-upgrade-request.ts";
import { approveUpgradeRequest, cancelUpgradeRequest, rejectUpgradeRequest } from "./upgrade-requests/decide-upgrade-request.ts";

/** Every endpoint under /status-levels, in the order the OpenAPI document lists them. */
export const routes: readonly AnyRoute[] = [
  getOrganizationStatus,
  getEligibility,
  getStatusHistory,
  grantStatusLevel,
  revokeStatusLevel,
  renewStatusLevelB,
  updateStatusValidity,
  listOrganizationUpgradeRequests,
  createUpgradeRequest,
  cancelUpgradeRequest,
  approveUpgradeRequest,
  rejectUpgradeRequest,
  listPendingUpgradeRequests,
  postSubscriptionEvent,
  listNotifications,
  markNotificationsRead,
  runDailyJobNow,
  listEmailOutbox,
  getLevelCatalog,
  getBadge,
  getHealth,
];

export const allRoutes: readonly AnyRoute[] = [...routes, openApiRoute(() => allRoutes)];
