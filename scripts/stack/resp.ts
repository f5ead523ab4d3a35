import net from "node:net";

/** A Redis reply, kept raw: bulk strings as Buffers, errors as values (an HGETALL stays a flat array). */
export type RespValue = string | number | Buffer | null | RespError | RespValue[];

export class RespError {
  constructor(readonly message: string) {}
}

type Pending = { resolve: (value: RespValue) => void; reject: (error: Error) => void };

/**
 * A minimal pipelined RESP2 client over one TCP connection. Replies come back in the order
 * commands were written, so a batch written in one `write` (MULTI ... EXEC) is never interleaved
 * with another caller's commands.
 */
export class RespConnection {
  private buffer: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private closedError: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.onData(chunk));
    const fail = (error: Error) => {
      this.closedError = error;
      for (const p of this.pending.splice(0)) p.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(this.closedError ?? new Error("redis connection closed")));
  }

  static connect(url: string, timeoutMs = 3000): Promise<RespConnection> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: u.hostname || "127.0.0.1", port: Number(u.port || 6379) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`timed out connecting to redis at ${u.host}`));
      }, timeoutMs);
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once("connect", async () => {
        clearTimeout(timer);
        const conn = new RespConnection(socket);
        try {
          if (u.password) await conn.expectOk(u.username ? ["AUTH", decodeURIComponent(u.username), decodeURIComponent(u.password)] : ["AUTH", decodeURIComponent(u.password)]);
          const db = u.pathname.replace("/", "");
          if (db) await conn.expectOk(["SELECT", db]);
          resolve(conn);
        } catch (error) {
          socket.destroy();
          reject(error);
        }
      });
    });
  }

  get isOpen(): boolean {
    return this.closedError === null && !this.socket.destroyed;
  }

  command(args: Array<string | number>): Promise<RespValue> {
    return this.batch([args]).then((replies) => replies[0]!);
  }

  /** Writes all commands at once and resolves with their replies, in order. */
  batch(commands: Array<Array<string | number>>): Promise<RespValue[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const replies = commands.map(
      () => new Promise<RespValue>((resolve, reject) => this.pending.push({ resolve, reject })),
    );
    this.socket.write(Buffer.concat(commands.map(encodeCommand)));
    return Promise.all(replies);
  }

  close(): void {
    this.socket.destroy();
  }

  private async expectOk(args: string[]): Promise<void> {
    const reply = await this.command(args);
    if (reply instanceof RespError) throw new Error(`redis ${args[0]} failed: ${reply.message}`);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const parsed = parseReply(this.buffer, 0);
      if (!parsed) return;
      this.buffer = this.buffer.subarray(parsed.next);
      this.pending.shift()?.resolve(parsed.value);
    }
  }
}

function encodeCommand(args: Array<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const data = Buffer.from(String(arg), "utf8");
    parts.push(Buffer.from(`$${data.length}\r\n`), data, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** Parses one reply at `offset`; undefined when the buffer does not hold a whole reply yet. */
function parseReply(buf: Buffer, offset: number): { value: RespValue; next: number } | undefined {
  const lineEnd = buf.indexOf("\r\n", offset);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, next: afterLine };
    case "-":
      return { value: new RespError(line), next: afterLine };
    case ":":
      return { value: Number(line), next: afterLine };
    case "$": {
      const length = Number(line);
      if (length === -1) return { value: null, next: afterLine };
      if (buf.length < afterLine + length + 2) return undefined;
      return { value: buf.subarray(afterLine, afterLine + length), next: afterLine + length + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count === -1) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next);
        if (!item) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}
