import type { StackInfo } from "../stack/stack-info.ts";

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
    /** A local HTTP endpoint that runs SQL as the superuser, for fixtures made from inside workerd. */
    sqlServer: { url: string; token: string };
  }
}
