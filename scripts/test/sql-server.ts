import { randomBytes } from "node:crypto";
import http from "node:http";
import postgres from "postgres";
import { freePort } from "../stack/net.ts";

/**
 * Test-only: runs parameterised SQL as the superuser for fixtures (users in auth.users,
 * organizations, reviews...). Handler tests run inside workerd, which has no Postgres driver, so
 * they make their fixtures through this. Listens on 127.0.0.1 with a random bearer token.
 */
export async function startSqlServer(databaseUrl: string): Promise<{ url: string; token: string; stop(): Promise<void> }> {
  const sql = postgres(databaseUrl, { max: 10, onnotice: () => {} });
  const token = randomBytes(24).toString("base64url");
  const server = http.createServer(async (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: "bad token" });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      const { query, params = [], holdMs } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { query: string; params?: unknown[]; holdMs?: number };
      if (holdMs === undefined) {
        const rows = await sql.unsafe(query, params as postgres.ParameterOrJSON<never>[]);
        return reply(200, { rows: [...rows] });
      }
      // A database made slow on purpose: the query (e.g. `select ... for update`) runs in a
      // transaction that stays open for holdMs after the reply, so its locks are held that long.
      let holding!: () => void;
      const held = new Promise<void>((resolve) => (holding = resolve));
      const transaction = sql.begin(async (tx) => {
        const rows = await tx.unsafe(query, params as postgres.ParameterOrJSON<never>[]);
        reply(200, { rows: [...rows] });
        holding();
        await new Promise((resolve) => setTimeout(resolve, Math.min(holdMs, 30_000)));
      });
      await Promise.race([held, transaction]);
      transaction.catch(() => {});
    } catch (error) {
      const e = error as Error & { code?: string };
      reply(400, { error: e.message, code: e.code });
    }
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sql.end({ timeout: 2 });
    },
  };
}
