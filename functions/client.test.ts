import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import type { ExtractSchema } from "hono/types";
import { describe, expect, it } from "vitest";
import { exec, fixtures, testEnv } from "./_test/harness.ts";
import type { App } from "./app.ts";
import { createStatusLevelsClient, type StatusLevelsClient } from "./client.ts";
import worker from "./index.ts";

/*
 * Type-level checks (`npm run typecheck` fails when one breaks): every route's JSON responses are
 * typed (none is `unknown` or `any`), and a few routes have exactly the types browser code relies on.
 */
type Schema = ExtractSchema<App>;
type Untyped<T> = 0 extends 1 & T ? true : unknown extends T ? true : false;
/** "<path> <method> <status>" of every JSON response whose body type is unknown or any. */
type UntypedResponses = {
  [P in keyof Schema]: {
    [M in keyof Schema[P]]: Schema[P][M] extends infer E
      ? E extends { output: infer O; outputFormat: "json"; status: infer S extends number }
        ? Untyped<O> extends true ? `${P & string} ${M & string} ${S}` : never
        : never
      : never;
  }[keyof Schema[P]];
}[keyof Schema];
const everyResponseTyped: [UntypedResponses] extends [never] ? true : UntypedResponses = true;
void everyResponseTyped;

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Api = StatusLevelsClient["status-levels"];
type JsonFor<F extends (...args: never[]) => Promise<unknown>, S extends number> = Awaited<ReturnType<F>> extends infer R
  ? R extends { status: S; json(): Promise<infer J> } ? J : never
  : never;
type StatusView = JsonFor<Api["organizations"][":id"]["$get"], 200>;
type CreatedRequest = JsonFor<Api["upgrade-requests"]["$post"], 201>;
type HistoryPage = JsonFor<Api["organizations"][":id"]["history"]["$get"], 200>;
type NotFound = JsonFor<Api["organizations"][":id"]["$get"], 404>;
const typed = {
  currentLevel: true satisfies Equals<StatusView["current_level"], "0" | "A" | "B" | "C">,
  reviewCount: true satisfies Equals<NonNullable<StatusView["level_c_progress"]>["review_count"], number>,
  progressNullable: true satisfies Equals<null extends StatusView["level_c_progress"] ? true : false, true>,
  targetLevel: true satisfies Equals<CreatedRequest["target_level"], "B" | "C">,
  requestStatus: true satisfies Equals<CreatedRequest["status"], "pending" | "approved" | "rejected" | "cancelled">,
  historyIsArray: true satisfies Equals<HistoryPage extends unknown[] ? true : false, true>,
  problemDetail: true satisfies Equals<NotFound["detail"], string>,
  createBody: true satisfies Equals<
    Parameters<Api["upgrade-requests"]["$post"]>[0]["json"],
    { organization_id: string; target_level: "B" | "C"; message?: string | undefined; evidence_urls?: string[] | undefined }
  >,
};
void typed;

/** The client calling the Worker's fetch handler in this runtime, as a browser would over HTTP. */
function clientFor(token: string | null) {
  return createStatusLevelsClient("http://status-levels.test", {
    token: () => token,
    fetch: async (input, init) => {
      const ctx = createExecutionContext();
      const response = await worker.fetch(new Request(input, init) as never, testEnv, ctx);
      await waitOnExecutionContext(ctx);
      return response;
    },
  });
}

describe("the typed client (functions/client.ts)", () => {
  it("keeps a crafted id one path segment: `../`, `?` and `#` cannot send the caller's token to another endpoint", async () => {
    const p = await fixtures.orgWithPeople();
    await fixtures.levelRow(p.orgId, "B");
    const seen: string[] = [];
    const api = createStatusLevelsClient("http://status-levels.test", {
      token: p.platformAdmin.token,
      fetch: async (input, init) => {
        seen.push(new URL(new Request(input, init).url).pathname + new URL(new Request(input, init).url).search);
        const ctx = createExecutionContext();
        const response = await worker.fetch(new Request(input, init) as never, testEnv, ctx);
        await waitOnExecutionContext(ctx);
        return response;
      },
    });
    const read = await api["status-levels"].organizations[":id"].$get({ param: { id: "../admin/email-outbox" } });
    expect(read.status).toBe(400);
    const before = await exec<{ valid_until: Date }>("select valid_until from public.organization_status_levels where organization_id = $1", [p.orgId]);
    const write = await api["status-levels"]["upgrade-requests"][":id"].cancel.$post({ param: { id: `../organizations/${p.orgId}/renew#` } });
    expect(write.status).toBe(400);
    const query = await api["status-levels"].organizations[":id"].$get({ param: { id: `${p.orgId}?debug=1` } });
    expect(query.status).toBe(400);
    expect(seen).toEqual([
      "/status-levels/organizations/..%2Fadmin%2Femail-outbox",
      `/status-levels/upgrade-requests/..%2Forganizations%2F${p.orgId}%2Frenew%23/cancel`,
      `/status-levels/organizations/${p.orgId}%3Fdebug%3D1`,
    ]);
    expect(await exec("select valid_until from public.organization_status_levels where organization_id = $1", [p.orgId])).toEqual(before);
  });

  it("creates an upgrade request as an owner and reads it back in the status, history and request list", async () => {
    const p = await fixtures.orgWithPeople();
    const api = clientFor(p.owner.token)["status-levels"];

    const created = await api["upgrade-requests"].$post({ json: { organization_id: p.orgId, target_level: "B", message: "ready" } });
    expect(created.status).toBe(201);
    if (created.status !== 201) return;
    const request = await created.json();
    expect(request).toMatchObject({ organization_id: p.orgId, target_level: "B", status: "pending" });

    const status = await api.organizations[":id"].$get({ param: { id: p.orgId } });
    expect(status.status).toBe(200);
    if (status.status !== 200) return;
    const view = await status.json();
    expect(view.pending_upgrade_request?.id).toBe(request.id);
    expect(view.level_c_progress?.review_count).toBe(0);

    const list = await api.organizations[":id"]["upgrade-requests"].$get({ param: { id: p.orgId }, query: { status: "pending", limit: 5 } });
    expect(list.status).toBe(200);
    if (list.status !== 200) return;
    expect((await list.json()).map((r) => r.id)).toEqual([request.id]);
    expect(list.headers.get("x-total-count")).toBe("1");
  });

  it("gives problem documents typed per status, and anonymous calls without a token", async () => {
    const missing = await clientFor(null)["status-levels"].organizations[":id"].$get({ param: { id: crypto.randomUUID() } });
    expect(missing.status).toBe(404);
    if (missing.status !== 404) return;
    expect((await missing.json()).code).toBe("organization_not_found");
    const refused = await clientFor(null)["status-levels"]["upgrade-requests"].$post({ json: { organization_id: crypto.randomUUID(), target_level: "B" } });
    expect(refused.status).toBe(401);
    const catalog = await clientFor(null)["status-levels"].levels.$get();
    expect(catalog.status).toBe(200);
  });
});
