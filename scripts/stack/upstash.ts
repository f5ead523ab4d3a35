import http from "node:http";
import { freePort } from "./net.ts";
import { RespConnection, RespError, type RespValue } from "./resp.ts";

export interface UpstashServer {
  url: string;
  token: string;
  /** HTTP requests and Redis commands served so far (the bench reports round trips with it). */
  stats(): { requests: number; commands: number };
  stop(): Promise<void>;
}

type Command = Array<string | number>;

/**
 * A local server speaking the Upstash REST protocol over a real Redis, so the app runs the real
 * `@upstash/redis` client: POST `/` (one command), `/pipeline`, `/multi-exec`, path-style
 * commands, bearer token, and `Upstash-Encoding: base64` replies.
 */
export async function startUpstashProxy({ redisUrl, token }: { redisUrl: string; token: string }): Promise<UpstashServer> {
  let connection: Promise<RespConnection> | null = null;
  const redis = async (): Promise<RespConnection> => {
    const current = connection ? await connection.catch(() => null) : null;
    if (current?.isOpen) return current;
    connection = RespConnection.connect(redisUrl);
    return connection;
  };
  let requests = 0;
  let commands = 0;

  const server = http.createServer(async (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: "Unauthorized" });
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/__stats") return reply(200, { requests, commands });
    requests++;
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    try {
      const body = await readBody(req);
      const json: unknown = body.length ? JSON.parse(body) : null;
      const conn = await redis();
      if (url.pathname === "/pipeline" || url.pathname === "/multi-exec") {
        if (!Array.isArray(json) || !json.every(isCommand)) return reply(400, { error: "ERR a pipeline body is an array of commands" });
        commands += json.length;
        if (url.pathname === "/pipeline") {
          const results = await conn.batch(json);
          return reply(200, results.map((r) => item(r, base64)));
        }
        const replies = await conn.batch([["MULTI"], ...json, ["EXEC"]]);
        const exec = replies[replies.length - 1];
        if (exec instanceof RespError) return reply(400, { error: exec.message });
        if (!Array.isArray(exec)) return reply(400, { error: "ERR transaction aborted" });
        return reply(200, exec.map((r) => item(r, base64)));
      }
      const command: unknown =
        url.pathname === "/" ? json : url.pathname.split("/").filter(Boolean).map(decodeURIComponent).concat(isCommand(json) ? json.map(String) : []);
      if (!isCommand(command)) return reply(400, { error: "ERR the body must be a command array, e.g. [\"GET\",\"key\"]" });
      commands++;
      const result = await conn.command(command);
      if (result instanceof RespError) return reply(400, { error: result.message });
      return reply(200, { result: encode(result, base64) });
    } catch (error) {
      if (error instanceof SyntaxError) return reply(400, { error: `ERR malformed JSON: ${error.message}` });
      return reply(503, { error: `ERR redis unavailable: ${(error as Error).message}` });
    }
  });
  server.keepAliveTimeout = 30_000;
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    stats: () => ({ requests, commands }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const conn = connection ? await connection.catch(() => null) : null;
      conn?.close();
    },
  };
}

function isCommand(value: unknown): value is Command {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === "string" || typeof v === "number" || typeof v === "boolean")
  );
}

function item(value: RespValue, base64: boolean): { result: unknown } | { error: string } {
  return value instanceof RespError ? { error: value.message } : { result: encode(value, base64) };
}

function encode(value: RespValue, base64: boolean): unknown {
  if (value === null || typeof value === "number") return value;
  if (value instanceof RespError) return value.message;
  if (Array.isArray(value)) return value.map((v) => encode(v, base64));
  if (Buffer.isBuffer(value)) return base64 ? value.toString("base64") : value.toString("utf8");
  // Simple strings: Upstash leaves "OK" alone and encodes the rest.
  return base64 && value !== "OK" ? Buffer.from(value).toString("base64") : value;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
