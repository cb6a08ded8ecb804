/**
 * Console enrollment codes in the store (D-51), for both stores: the table and its statements are
 * the same in SQLite and PostgreSQL (`enroll_codes`: `code_hash`, `username`, `expires_at_ms`,
 * `used_at_ms`), only how a user's row is locked differs. Only the SHA-256 of a code is stored.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import { ENROLL_CODE_KEPT_MS, type EnrollCodeCreation, type EnrollRedemption, StoreError } from "../Store.js"

/** What is stored of a code: its SHA-256, hex. */
export const codeHash = (code: string): string => createHash("sha256").update(code, "utf8").digest("hex")

/** A count or a time in ms as the driver returns it (PostgreSQL's BIGINT as a decimal string). */
const toNumber = (u: unknown): number => {
  const n = typeof u === "number" ? u : typeof u === "string" || typeof u === "bigint" ? Number(u) : NaN
  return Number.isFinite(n) ? n : NaN
}

/**
 * Why a code that could not be taken was refused, from its row (absent: never issued or purged):
 * forgotten after `ENROLL_CODE_KEPT_MS` past its expiry, else used before expired.
 */
export const refusal = (
  row: { readonly expires_at_ms: unknown; readonly used_at_ms: unknown } | undefined,
  nowMs: number
): "unknown" | "expired" | "used" => {
  if (row === undefined) return "unknown"
  const expiresAtMs = toNumber(row.expires_at_ms)
  if (!(expiresAtMs + ENROLL_CODE_KEPT_MS > nowMs)) return "unknown"
  return row.used_at_ms !== null ? "used" : "expired"
}

/** What the operations run on. */
export interface EnrollCodeAccess {
  readonly sql: SqlClient.SqlClient
  readonly tx: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /**
   * Whether the user exists, locking its row until the transaction ends where the database needs it
   * (so two creates for one user take turns between the count and the insert).
   */
  readonly lockUser: (user: string) => Effect.Effect<boolean, SqlError>
  /** Failures as `StoreError` named after the operation (a `StoreError` stays as it is). */
  readonly guard: (operation: string) => <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, StoreError>
}

/** The enrollment-code operations of the `Store` port over `access`. */
export const makeEnrollCodes = ({ guard, lockUser, sql, tx }: EnrollCodeAccess) => {
  const purge = (nowMs: number) =>
    Effect.map(
      sql`DELETE FROM enroll_codes WHERE expires_at_ms <= ${nowMs - ENROLL_CODE_KEPT_MS} RETURNING code_hash`,
      (rows) => rows.length
    )

  const outstanding = (user: string, nowMs: number) =>
    Effect.map(
      sql<{ readonly n: unknown }>`SELECT count(*) AS n FROM enroll_codes
        WHERE username = ${user} AND used_at_ms IS NULL AND expires_at_ms > ${nowMs}`,
      (rows) => toNumber(rows[0]?.n)
    )

  const createEnrollCode = (input: {
    readonly code: string
    readonly user: string
    readonly nowMs: number
    readonly expiresAtMs: number
    readonly maxOutstanding: number
  }) =>
    tx(Effect.gen(function*() {
      yield* purge(input.nowMs)
      if (!(yield* lockUser(input.user))) {
        return yield* new StoreError({ operation: "createEnrollCode", cause: "no such user" })
      }
      const held = yield* outstanding(input.user, input.nowMs)
      if (!(held < input.maxOutstanding)) {
        const capped: EnrollCodeCreation = { _tag: "Capped", outstanding: held }
        return capped
      }
      yield* sql`INSERT INTO enroll_codes (code_hash, username, expires_at_ms, used_at_ms)
        VALUES (${codeHash(input.code)}, ${input.user}, ${input.expiresAtMs}, NULL)`
      const created: EnrollCodeCreation = { _tag: "Created" }
      return created
    })).pipe(guard("createEnrollCode"))

  const countEnrollCodes = (user: string, nowMs: number) => outstanding(user, nowMs).pipe(guard("countEnrollCodes"))

  // Single use under concurrency: the take is one conditional UPDATE; a concurrent one waits for the
  // row (PostgreSQL's row lock, SQLite's one writer) and then finds it used.
  const redeemEnrollCode = (input: { readonly code: string; readonly nowMs: number }) => {
    const hash = codeHash(input.code)
    return tx(Effect.gen(function*() {
      const [taken] = yield* sql<{ readonly username: unknown }>`UPDATE enroll_codes SET used_at_ms = ${input.nowMs}
        WHERE code_hash = ${hash} AND used_at_ms IS NULL AND expires_at_ms > ${input.nowMs}
        RETURNING username`
      if (taken !== undefined && typeof taken.username === "string") {
        const redeemed: EnrollRedemption = { _tag: "Redeemed", user: taken.username }
        return redeemed
      }
      const [row] = yield* sql<{ readonly expires_at_ms: unknown; readonly used_at_ms: unknown }>`
        SELECT expires_at_ms, used_at_ms FROM enroll_codes WHERE code_hash = ${hash}`
      const refused: EnrollRedemption = { _tag: "Refused", reason: refusal(row, input.nowMs) }
      return refused
    })).pipe(guard("redeemEnrollCode"))
  }

  const releaseEnrollCode = (code: string) =>
    tx(sql`UPDATE enroll_codes SET used_at_ms = NULL WHERE code_hash = ${codeHash(code)}`).pipe(
      Effect.asVoid,
      guard("releaseEnrollCode")
    )

  const purgeEnrollCodes = (nowMs: number) => tx(purge(nowMs)).pipe(guard("purgeEnrollCodes"))

  return { createEnrollCode, countEnrollCodes, redeemEnrollCode, releaseEnrollCode, purgeEnrollCodes }
}
