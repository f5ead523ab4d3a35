import http from "node:http";
import { freePort } from "./net.ts";

export interface Gateway {
  url: string;
  stop(): Promise<void>;
}

export interface RestStats {
  total: number;
  bySubject: Record<string, number>;
  jwks: number;
}

/**
 * The slice of Supabase's API gateway the app relies on, so `SUPABASE_URL` is used unchanged:
 * `/rest/v1/*` goes to PostgREST, `/auth/v1/.well-known/jwks.json` serves the project's public
 * keys. Like Supabase's gateway it wants an `apikey` header on REST calls.
 * It also counts REST requests per token subject (`GET /__gateway/stats`), so tests running in
 * parallel can each count the database round trips made for their own users.
 */
export async function startGateway({ postgrestUrl, jwks }: { postgrestUrl: string; jwks: unknown }): Promise<Gateway> {
  const upstream = new URL(postgrestUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const stats: RestStats = { total: 0, bySubject: {}, jwks: 0 };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/auth/v1/.well-known/jwks.json") {
      stats.jwks++;
      return json(200, jwks, { "cache-control": "public, max-age=600" });
    }
    if (url.pathname === "/__gateway/stats") {
      const subject = url.searchParams.get("subject");
      return json(200, subject ? { total: stats.bySubject[subject] ?? 0 } : stats);
    }
    if (!url.pathname.startsWith("/rest/v1/") && url.pathname !== "/rest/v1") {
      return json(404, { message: "no route matched with those values" });
    }
    if (!req.headers.apikey && !url.searchParams.has("apikey")) {
      return json(401, { message: "No API key found in request" });
    }
    stats.total++;
    const subject = tokenSubject(req.headers.authorization);
    stats.bySubject[subject] = (stats.bySubject[subject] ?? 0) + 1;

    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: upstream.host };
    delete headers.apikey;
    const proxied = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: url.pathname.slice("/rest/v1".length) + url.search,
        headers,
        agent,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    proxied.on("error", (error) => {
      if (!res.headersSent) json(503, { code: "PGRST000", message: `PostgREST unreachable: ${error.message}` });
      else res.destroy();
    });
    req.pipe(proxied);
  });
  server.keepAliveTimeout = 30_000;
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The `sub` (or `role` for API keys) of a bearer token, read without verifying: only for counting. */
function tokenSubject(authorization: string | undefined): string {
  const token = authorization?.replace(/^Bearer\s+/i, "");
  const payload = token?.split(".")[1];
  if (!payload) return "none";
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sub?: string; role?: string };
    return claims.sub ?? claims.role ?? "unknown";
  } catch {
    return "unknown";
  }
}
