/**
 * Vitest runs a global setup once per project that inherits it (here the root, `node` and
 * `workers`). What it starts is shared instead: the first call starts it, every project gets the
 * same instance, and the last teardown stops it. Kept on globalThis, since each project may load
 * its own copy of the setup module.
 */
type Shared<T> = { value: Promise<T>; users: number };

export async function runOnce<T>(key: string, start: () => Promise<T>, stop: (value: T) => Promise<void>): Promise<{ value: T; release: () => Promise<void> }> {
  const registry = ((globalThis as { __statusLevelsTestSetup?: Map<string, Shared<unknown>> }).__statusLevelsTestSetup ??= new Map());
  let entry = registry.get(key) as Shared<T> | undefined;
  if (!entry) {
    entry = { value: start(), users: 0 };
    registry.set(key, entry);
  }
  entry.users++;
  const value = await entry.value;
  return {
    value,
    release: async () => {
      if (--entry.users > 0) return;
      registry.delete(key);
      await stop(value);
    },
  };
}
