import { describe, expect, it } from "vitest";
import { fromDbError } from "./errors.ts";

describe("fromDbError", () => {
  it("maps every Postgres data exception (SQLSTATE class 22) to a 400, never a 500", () => {
    for (const code of ["22P05", "22008", "22009", "22003", "22021", "22007", "22012", "22000"]) {
      const error = fromDbError({ code, message: "unsupported Unicode escape sequence" }, 400);
      expect({ code, status: error.status, problem: error.code }).toEqual({ code, status: 400, problem: "invalid_input" });
      expect(error.message).not.toMatch(/Unicode/);
    }
  });

  it("still answers 503 for a statement cancelled by its timeout (57014) and 500 for what is really ours", () => {
    expect(fromDbError({ code: "57014", message: "canceling statement due to statement timeout" }, 500).status).toBe(503);
    expect(fromDbError({ code: "42883", message: "function does not exist" }, 404).status).toBe(500);
  });
});
