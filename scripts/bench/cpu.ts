import { readFile, readdir, readlink } from "node:fs/promises";

/**
 * CPU time of the stack's processes from /proc (Linux), so a benchmark can say what one request
 * costs each of them: the Worker's runtime, wrangler, PostgREST, the Postgres backends, Redis, the
 * Upstash adapter, the gateway and the load generator.
 */

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on every Linux we run on). */
const ticksPerSecond = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, ms. */
  cpuMs: number;
  /** Start time after boot, in ticks: tells a reused pid from the process it replaced. */
  startTicks: number;
  comm: string;
}

async function procStat(pid: number): Promise<ProcStat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces: the fields after it start past the last ')'.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    return {
      pid,
      ppid: Number(fields[1]),
      cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond,
      startTicks: Number(fields[19]),
      comm,
    };
  } catch {
    return null; // gone
  }
}

/** Every live process, by pid. */
async function allProcesses(): Promise<Map<number, ProcStat>> {
  const pids = (await readdir("/proc")).filter((n) => /^\d+$/.test(n)).map(Number);
  const stats = await Promise.all(pids.map(procStat));
  return new Map(stats.filter((s): s is ProcStat => s !== null).map((s) => [s.pid, s]));
}

/** The processes below `pid` (children, grandchildren, ...). */
export async function descendants(pid: number): Promise<ProcStat[]> {
  const all = [...(await allProcesses()).values()];
  const found: ProcStat[] = [];
  const parents = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/** The process that listens on 127.0.0.1:`port` (TCP), found through its socket's inode. */
export async function pidListeningOn(port: number): Promise<number | null> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const lines = (await readFile(file, "utf8").catch(() => "")).split("\n").slice(1);
    for (const line of lines) {
      const cols = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; inode is column 10.
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === "0A") inodes.add(cols[9]!);
    }
  }
  if (inodes.size === 0) return null;
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const fds = await readdir(`/proc/${name}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${name}/fd/${fd}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) return Number(name);
    }
  }
  return null;
}

/** A set of processes counted as one: its pids are looked up at each sample (backends come and go). */
export interface ProcessGroup {
  label: string;
  pids: () => Promise<number[]>;
}

export type CpuSample = Map<string, Map<number, { cpuMs: number; startTicks: number }>>;

export async function sampleCpu(groups: ProcessGroup[]): Promise<CpuSample> {
  const sample: CpuSample = new Map();
  await Promise.all(
    groups.map(async (g) => {
      const stats = await Promise.all((await g.pids()).map(procStat));
      sample.set(g.label, new Map(stats.filter((s): s is ProcStat => s !== null).map((s) => [s.pid, { cpuMs: s.cpuMs, startTicks: s.startTicks }])));
    }),
  );
  return sample;
}

/**
 * CPU ms each group spent between two samples. A process seen only at the end started in between
 * and counts from zero; one seen only at the start ended in between and its last part is lost
 * (none of the measured processes ends during a run).
 */
export function cpuBetween(before: CpuSample, after: CpuSample): Map<string, number> {
  const spent = new Map<string, number>();
  for (const [label, procs] of after) {
    let total = 0;
    for (const [pid, end] of procs) {
      const start = before.get(label)?.get(pid);
      total += start && start.startTicks === end.startTicks ? end.cpuMs - start.cpuMs : end.cpuMs;
    }
    spent.set(label, total);
  }
  return spent;
}

/** The process's own name (`workerd`, `node`, `postgrest`, ...). */
export async function processName(pid: number): Promise<string | null> {
  return (await procStat(pid))?.comm ?? null;
}

/**
 * CPU time of every thread of `pid` so far, in ms, from the scheduler's nanosecond counters
 * (/proc/<pid>/task/<tid>/schedstat): fine enough for one cold start, where /proc/<pid>/stat's
 * 10 ms ticks are not. Threads that already ended are not counted.
 */
export async function threadsCpuMs(pid: number): Promise<number> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  let ns = 0;
  for (const tid of tids) {
    const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8").catch(() => "0");
    ns += Number(text.split(" ")[0]);
  }
  return ns / 1e6;
}

/** The Postgres server processes serving `database` (the backends of its connections). */
export async function postgresBackends(postmasterPid: number, database: string): Promise<number[]> {
  const found: number[] = [];
  for (const p of await descendants(postmasterPid)) {
    const cmdline = await readFile(`/proc/${p.pid}/cmdline`, "utf8").catch(() => "");
    // A backend's title: "postgres: <user> <database> <client> <state>".
    if (cmdline.split(/[\0 ]+/).includes(database)) found.push(p.pid);
  }
  return found;
}
