/**
 * The `Store` conformance suite's console enrollment codes (D-51): create, count, redeem (single
 * use under concurrency), release, purge, and what is stored of a code (its SHA-256 only). Run by
 * `describeStore` for every implementation.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { ENROLL_CODE_KEPT_MS, type EnrollRedemption, StoreError, type StoreShape } from "../../src/Store.js"
import type { StoreFactory } from "./StoreConformance.js"

const NOW = "2026-11-24T00:00:00Z"
const NOW_MS = Date.parse(NOW)
const TTL = 10 * 60_000

const codeOf = (n: number) => `code${String(n).padStart(28, "0")}`

const sha256 = (code: string) => createHash("sha256").update(code, "utf8").digest("hex")

const users = (store: StoreShape, ...names: ReadonlyArray<string>) =>
  Effect.forEach(names, (username, i) =>
    store.registerUser({
      username,
      machine: "laptop",
      pubkey: `key-of-${username}-${i}`,
      now: NOW
    }), { discard: true })

const create = (store: StoreShape, code: string, user: string, options: {
  readonly nowMs?: number
  readonly expiresAtMs?: number
  readonly maxOutstanding?: number
} = {}) =>
  store.createEnrollCode({
    code,
    user,
    nowMs: options.nowMs ?? NOW_MS,
    expiresAtMs: options.expiresAtMs ?? (options.nowMs ?? NOW_MS) + TTL,
    maxOutstanding: options.maxOutstanding ?? 16
  })

const redeem = (store: StoreShape, code: string, nowMs = NOW_MS) => store.redeemEnrollCode({ code, nowMs })

const refused = (reason: "unknown" | "expired" | "used"): EnrollRedemption => ({ _tag: "Refused", reason })

const failureOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(
    Effect.either(effect),
    (result) =>
      result._tag === "Left" ? Effect.succeed(result.left) : Effect.dieMessage("expected a failure, got a success")
  )

export const describeEnrollCodes = (factory: StoreFactory) =>
  describe("console enrollment codes (D-51)", () => {
    it.scoped("create, redeem once, used, unknown; only the code's SHA-256 is stored", () =>
      Effect.gen(function*() {
        const { enrollCodes, store } = yield* factory.fresh
        yield* users(store, "aaron")
        const code = codeOf(1)
        assert.deepStrictEqual(yield* create(store, code, "aaron"), { _tag: "Created" })
        assert.strictEqual(yield* store.countEnrollCodes("aaron", NOW_MS), 1)

        const rows = yield* enrollCodes
        assert.strictEqual(rows.length, 1)
        assert.strictEqual(rows[0]!.code_hash, sha256(code))
        assert.strictEqual(rows[0]!.username, "aaron")
        for (const value of Object.values(rows[0]!)) assert.notInclude(String(value), code)

        assert.deepStrictEqual(yield* redeem(store, code, NOW_MS + 1), { _tag: "Redeemed", user: "aaron" })
        assert.deepStrictEqual(yield* redeem(store, code, NOW_MS + 2), refused("used"))
        assert.strictEqual(yield* store.countEnrollCodes("aaron", NOW_MS + 2), 0)
        // a used code stays "used" past its expiry, until it is forgotten
        assert.deepStrictEqual(yield* redeem(store, code, NOW_MS + TTL + 1), refused("used"))
        assert.deepStrictEqual(yield* redeem(store, code, NOW_MS + TTL + ENROLL_CODE_KEPT_MS), refused("unknown"))
        // never issued; the empty string; the hash itself is not the code
        assert.deepStrictEqual(yield* redeem(store, codeOf(2)), refused("unknown"))
        assert.deepStrictEqual(yield* redeem(store, ""), refused("unknown"))
        assert.deepStrictEqual(yield* redeem(store, sha256(code)), refused("unknown"))
      }))

    it.scoped("expiry: redeemable until expiresAtMs (exclusive), then expired, then unknown once forgotten", () =>
      Effect.gen(function*() {
        const { store } = yield* factory.fresh
        yield* users(store, "aaron")
        yield* create(store, codeOf(1), "aaron")
        yield* create(store, codeOf(2), "aaron")
        yield* create(store, codeOf(3), "aaron", { expiresAtMs: NOW_MS })
        assert.deepStrictEqual(yield* redeem(store, codeOf(1), NOW_MS + TTL - 1), { _tag: "Redeemed", user: "aaron" })
        assert.deepStrictEqual(yield* redeem(store, codeOf(2), NOW_MS + TTL), refused("expired"))
        // an expiry not after creation: expired from the start
        assert.deepStrictEqual(yield* redeem(store, codeOf(3), NOW_MS), refused("expired"))
        assert.deepStrictEqual(
          yield* redeem(store, codeOf(2), NOW_MS + TTL + ENROLL_CODE_KEPT_MS - 1),
          refused("expired")
        )
        assert.deepStrictEqual(yield* redeem(store, codeOf(2), NOW_MS + TTL + ENROLL_CODE_KEPT_MS), refused("unknown"))
      }))

    it.scoped("release gives a taken code back; releasing an unknown or untaken code changes nothing", () =>
      Effect.gen(function*() {
        const { store } = yield* factory.fresh
        yield* users(store, "aaron")
        yield* create(store, codeOf(1), "aaron")
        assert.deepStrictEqual(yield* redeem(store, codeOf(1)), { _tag: "Redeemed", user: "aaron" })
        yield* store.releaseEnrollCode(codeOf(1))
        yield* store.releaseEnrollCode(codeOf(1))
        yield* store.releaseEnrollCode(codeOf(9))
        assert.strictEqual(yield* store.countEnrollCodes("aaron", NOW_MS), 1)
        assert.deepStrictEqual(yield* redeem(store, codeOf(1)), { _tag: "Redeemed", user: "aaron" })
        assert.deepStrictEqual(yield* redeem(store, codeOf(9)), refused("unknown"))
      }))

    it.scoped("the per-user cap counts unredeemed, unexpired codes only, per user", () =>
      Effect.gen(function*() {
        const { enrollCodes, store } = yield* factory.fresh
        yield* users(store, "aaron", "bob")
        for (let i = 0; i < 3; i++) {
          assert.deepStrictEqual(yield* create(store, codeOf(i), "aaron", { maxOutstanding: 3 }), { _tag: "Created" })
        }
        assert.deepStrictEqual(yield* create(store, codeOf(3), "aaron", { maxOutstanding: 3 }), {
          _tag: "Capped",
          outstanding: 3
        })
        assert.deepStrictEqual(yield* redeem(store, codeOf(3)), refused("unknown"), "a capped code is not stored")
        // bob is not affected; a cap of 0 refuses every code
        assert.deepStrictEqual(yield* create(store, codeOf(10), "bob", { maxOutstanding: 3 }), { _tag: "Created" })
        assert.deepStrictEqual(yield* create(store, codeOf(11), "bob", { maxOutstanding: 0 }), {
          _tag: "Capped",
          outstanding: 1
        })
        // a redeemed code frees a place; so does an expired one
        yield* redeem(store, codeOf(0))
        assert.deepStrictEqual(yield* create(store, codeOf(4), "aaron", { maxOutstanding: 3 }), { _tag: "Created" })
        const later = NOW_MS + TTL
        assert.strictEqual(yield* store.countEnrollCodes("aaron", later), 0)
        assert.deepStrictEqual(yield* create(store, codeOf(5), "aaron", { maxOutstanding: 1, nowMs: later }), {
          _tag: "Created"
        })
        assert.strictEqual((yield* enrollCodes).length, 6)
      }))

    it.scoped("bad inputs: an unknown user, a non-finite expiry and a taken code are refused and store nothing", () =>
      Effect.gen(function*() {
        const { enrollCodes, store } = yield* factory.fresh
        yield* users(store, "aaron")
        const noUser = yield* failureOf(create(store, codeOf(1), "nobody"))
        assert.instanceOf(noUser, StoreError)
        assert.strictEqual(noUser.operation, "createEnrollCode")
        const badExpiry = yield* failureOf(create(store, codeOf(2), "aaron", { expiresAtMs: Number.NaN }))
        assert.instanceOf(badExpiry, StoreError)
        assert.strictEqual(badExpiry.operation, "createEnrollCode")
        yield* create(store, codeOf(3), "aaron")
        const twice = yield* failureOf(create(store, codeOf(3), "aaron"))
        assert.instanceOf(twice, StoreError)
        assert.strictEqual((yield* enrollCodes).length, 1)
        assert.deepStrictEqual(yield* redeem(store, codeOf(1)), refused("unknown"))
        assert.deepStrictEqual(yield* redeem(store, codeOf(2)), refused("unknown"))
      }))

    it.scoped("removing the user removes its codes; purge forgets only codes expired long enough ago", () =>
      Effect.gen(function*() {
        const { enrollCodes, store } = yield* factory.fresh
        yield* users(store, "aaron", "bob")
        yield* create(store, codeOf(1), "aaron")
        yield* store.removeUser("aaron")
        assert.deepStrictEqual(yield* redeem(store, codeOf(1)), refused("unknown"))

        yield* create(store, codeOf(2), "bob", { expiresAtMs: NOW_MS + 1_000 })
        yield* create(store, codeOf(3), "bob", { expiresAtMs: NOW_MS + 2_000 })
        assert.strictEqual(yield* store.purgeEnrollCodes(NOW_MS + 1_000 + ENROLL_CODE_KEPT_MS - 1), 0)
        assert.strictEqual(yield* store.purgeEnrollCodes(NOW_MS + 1_000 + ENROLL_CODE_KEPT_MS), 1)
        assert.deepStrictEqual((yield* enrollCodes).map((row) => row.code_hash), [sha256(codeOf(3))])
        // creating purges too
        yield* create(store, codeOf(4), "bob", { nowMs: NOW_MS + 2_000 + ENROLL_CODE_KEPT_MS })
        assert.deepStrictEqual((yield* enrollCodes).map((row) => row.code_hash), [sha256(codeOf(4))])
      }))

    it.scoped("20 concurrent redeems of one code: exactly one wins, the others are told it is used", () =>
      Effect.gen(function*() {
        const { store } = yield* factory.fresh
        yield* users(store, "aaron")
        yield* create(store, codeOf(1), "aaron")
        const outcomes = yield* Effect.all(
          Array.from({ length: 20 }, () => redeem(store, codeOf(1))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(outcomes.filter((o) => o._tag === "Redeemed").length, 1)
        assert.deepStrictEqual(
          outcomes.filter((o) => o._tag === "Refused"),
          Array.from({ length: 19 }, () => refused("used"))
        )
      }))

    it.scoped("12 concurrent creates for one user stop at the cap", () =>
      Effect.gen(function*() {
        const { enrollCodes, store } = yield* factory.fresh
        yield* users(store, "aaron")
        const outcomes = yield* Effect.all(
          Array.from({ length: 12 }, (_, i) => create(store, codeOf(i), "aaron", { maxOutstanding: 5 })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(outcomes.filter((o) => o._tag === "Created").length, 5)
        assert.strictEqual((yield* enrollCodes).length, 5)
      }))
  })
