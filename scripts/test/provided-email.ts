/** What scripts/test/email-server-setup.ts hands to the tests (see scripts/test/email-server.ts). */
export interface EmailServerInfo {
  /** The recording e-mail API: use it as EMAIL_API_URL. */
  url: string;
  /** Its batch endpoint: use it as EMAIL_BATCH_API_URL. */
  batchUrl: string;
  /** Base URL of its control endpoints: `POST /__control`, `GET /__requests?to=`, `GET /__stats`. */
  controlUrl: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** A local HTTP e-mail API that records requests and can be told to fail. */
    emailServer: EmailServerInfo;
  }
}
