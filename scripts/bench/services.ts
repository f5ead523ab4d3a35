/**
 * The gateway or the Upstash adapter of the local stack in a process of its own, for the HTTP
 * bench: in the stack they share the bench's process, and the bench reports each one's CPU per
 * request. The parent sends one `ServiceRequest` over IPC (the Upstash token never appears in argv
 * or the environment) and gets the URL back; SIGTERM, or the parent going away, stops it.
 */
import { startGateway } from "../stack/gateway.ts";
import { startUpstashProxy } from "../stack/upstash.ts";

export type ServiceRequest =
  | { kind: "gateway"; postgrestUrl: string; jwks: unknown }
  | { kind: "upstash"; redisUrl: string; token: string };

export type ServiceReply = { type: "ready"; url: string } | { type: "failed"; message: string };

process.once("message", async (request: ServiceRequest) => {
  try {
    const service = request.kind === "gateway" ? await startGateway(request) : await startUpstashProxy(request);
    const stop = () => void service.stop().finally(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("disconnect", stop);
    process.send?.({ type: "ready", url: service.url } satisfies ServiceReply);
  } catch (error) {
    process.send?.({ type: "failed", message: (error as Error).message } satisfies ServiceReply, () => process.exit(1));
  }
});
