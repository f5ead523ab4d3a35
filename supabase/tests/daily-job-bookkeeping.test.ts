import { describe, expect, it } from "vitest";
import { exec, fixtures } from "../../scripts/test/node-harness.ts";
import { DAY, fromNow } from "./helpers.ts";

/**
 * expiry_notices and notification_queue have no foreign keys (the per-row checks were more than
 * half the cost of the notice step); a statement trigger on organization_status_levels takes
 * their place for deletes. These tests hold it to what the cascade did.
 */
const bookkeeping = async (levelIds: string[]) => {
  const [row] = await exec<{ notices: number; queued: number }>(
    `select (select count(*) from public.expiry_notices where status_level_id = any($1::uuid[]))::int as notices,
            (select count(*) from public.notification_queue where status_level_id = any($1::uuid[]))::int as queued`,
    [levelIds],
  );
  return row!;
};

/** Runs the notice step for these organizations only, as of now: B ending in 5 days gets 7 (sent) and 60, 30 (skipped). */
const noticeStep = (orgIds: string[]) =>
  exec("select public.run_daily_job_step('expiry_notices', null, 100, $1::uuid[])", [orgIds]);

describe("the daily job's bookkeeping without foreign keys", () => {
  it("goes with its organization when the organization is deleted, and leaves other organizations' rows alone", async () => {
    const gone = await fixtures.orgWithPeople();
    const kept = await fixtures.orgWithPeople();
    const goneLevel = await fixtures.levelRow(gone.orgId, "B", { validUntil: await fromNow(5 * DAY) });
    const keptLevel = await fixtures.levelRow(kept.orgId, "B", { validUntil: await fromNow(5 * DAY) });
    await noticeStep([gone.orgId, kept.orgId]);
    expect(await bookkeeping([goneLevel])).toEqual({ notices: 3, queued: 1 });
    expect(await bookkeeping([keptLevel])).toEqual({ notices: 3, queued: 1 });

    await exec("delete from public.organizations where id = $1", [gone.orgId]);

    expect(await bookkeeping([goneLevel])).toEqual({ notices: 0, queued: 0 });
    expect(await bookkeeping([keptLevel])).toEqual({ notices: 3, queued: 1 });
  });

  it("is removed in the deleting transaction: a rolled-back delete keeps it", async () => {
    const o = await fixtures.orgWithPeople();
    const level = await fixtures.levelRow(o.orgId, "B", { validUntil: await fromNow(5 * DAY) });
    await noticeStep([o.orgId]);
    await expect(
      exec(
        `do $$ begin
           delete from public.organizations where id = '${o.orgId}';
           raise exception 'roll back';
         end $$`,
      ),
    ).rejects.toThrow(/roll back/);
    expect(await bookkeeping([level])).toEqual({ notices: 3, queued: 1 });
  });

  it("refuses rows without a level (the queue's status_level_id is required)", async () => {
    const o = await fixtures.orgWithPeople();
    await expect(
      exec("insert into public.notification_queue (organization_id, kind, level) values ($1, 'level_expired', 'B')", [o.orgId]),
    ).rejects.toThrow(/status_level_id/);
  });
});
