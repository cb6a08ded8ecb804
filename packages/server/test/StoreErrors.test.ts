import { assert, describe, it } from "@effect/vitest"
import { isUnavailable, StoreError } from "../src/Store.js"

const failure = (cause: unknown) => new StoreError({ operation: "read history", cause })

describe("isUnavailable (D-42: unreachable store → `unavailable`, never `internal`)", () => {
  it("a pool with no free connection in time, a refused or reset connection, PostgreSQL shutting down", () => {
    for (
      const cause of [
        new Error("timeout exceeded when trying to connect"),
        { message: "wrapped", cause: new Error("Connection terminated due to connection timeout") },
        Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
        { code: "53300", message: "sorry, too many clients already" },
        { code: "57P01", message: "terminating connection due to administrator command" },
        { code: "57P03", message: "the database system is starting up" },
        "timed out"
      ]
    ) assert.isTrue(isUnavailable(failure(cause)), JSON.stringify(cause, Object.getOwnPropertyNames(cause ?? {})))
  })

  it("a refused statement is not: constraint violations, syntax errors, defects", () => {
    for (
      const cause of [
        { code: "23505", message: "duplicate key value violates unique constraint" },
        { code: "42601", message: "syntax error at or near" },
        new TypeError("cannot read properties of undefined"),
        undefined
      ]
    ) assert.isFalse(isUnavailable(failure(cause)))
  })
})
