/**
 * The store conformance suite on PostgreSQL, and what only PostgreSQL has: several stores (nodes)
 * on one database, migrations tracked in a table, an unreachable server.
 *
 * Each test gets a database of its own, `conclave_test_<random>_<n>`, created on the server of
 * `CONCLAVE_TEST_POSTGRES` (default postgres://postgres@127.0.0.1:5432/test) and dropped after.
 * Without a reachable server the suite is skipped (one line says so), except under `CI=true`,
 * where that is a failure.
 */
import { POSTGRES, postgresReachable, postgresShown, relay, scratchDatabase } from "@conclave/testkit/Backends"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as PgStore from "../src/PgStore.js"
import { isUnavailable, Store, StoreError, type StoreShape } from "../src/Store.js"
import { silentServer } from "./support/SilentServer.js"
import { channel, describeStore, failure, msg, readAll, type Subject } from "./support/StoreConformance.js"
import { describeScrollBack } from "./support/StoreScrollBack.js"

const open = (url: string) =>
  Layer.build(PgStore.layer({ url })).pipe(Effect.map((ctx): StoreShape => Context.get(ctx, Store)))

const openWithSql = (url: string) =>
  Layer.build(PgStore.layerClient.pipe(Layer.provideMerge(PgStore.layerPg({ url })))).pipe(
    Effect.map((ctx) => ({ store: Context.get(ctx, Store), sql: Context.get(ctx, SqlClient.SqlClient) }))
  )

const subject = Effect.gen(function*() {
  const { sql, store } = yield* Effect.flatMap(scratchDatabase, openWithSql)
  const result: Subject = {
    store,
    insertRawMessage: (row) =>
      sql`WITH next AS (
            INSERT INTO channel_seq (channel, last_seq) VALUES (${row.channel}, 1)
            ON CONFLICT (channel) DO UPDATE SET last_seq = channel_seq.last_seq + 1
            RETURNING last_seq)
          INSERT INTO messages (channel, seq, sender, payload, ts_ms, origin, reply_to)
          SELECT ${row.channel}, last_seq, ${row.sender}, ${row.payload}, ${row.ts_ms}, ${row.origin}, ${row.reply_to}
          FROM next`,
    enrollCodes: sql<{ code_hash: unknown; username: unknown; expires_at_ms: unknown }>`
      SELECT * FROM enroll_codes ORDER BY code_hash`,
    countRows: (table, channel) =>
      Effect.map(
        channel === undefined
          ? sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql(table)}`
          : sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql(table)} WHERE channel = ${channel}`,
        (rows) => Number(rows[0]?.n)
      )
  }
  return result
})

if (!postgresReachable) {
  if (process.env["CI"] === "true") {
    describe("PgStore", () => {
      it("PostgreSQL is reachable (required under CI=true)", () => {
        assert.fail(`no PostgreSQL at ${postgresShown}`)
      })
    })
  } else {
    console.log(`skipped: no PostgreSQL at ${postgresShown}`)
    describe.skip("PgStore", () => {
      it("needs PostgreSQL", () => {})
    })
  }
} else {
  describeStore("PostgreSQL", {
    fresh: subject,
    database: Effect.map(scratchDatabase, open),
    seqPerChannel: true
  })
  describeScrollBack("PostgreSQL", { fresh: subject, database: undefined, seqPerChannel: true })

  describe("PgStore", () => {
    it.scoped("an unreachable server is a StoreError of open, soon, naming no URL", () =>
      Effect.gen(function*() {
        const error = yield* failure(
          Effect.scoped(open("postgres://conclave:secret@127.0.0.1:1/nowhere")).pipe(
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "no answer within 20 s" })
          )
        )
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
        assert.strictEqual(error.message, "storage failure during open")
        assert.notInclude(String(error), "secret")
      }))

    it.scoped("a server that goes away: every operation is a StoreError (soon, no hang, no crash); back, the store works again", () =>
      Effect.gen(function*() {
        const direct = new URL(yield* scratchDatabase)
        const { cut, port, restore } = yield* relay(POSTGRES)
        direct.host = `127.0.0.1:${port}`
        const store = yield* open(direct.toString())
        yield* channel(store, "ops")
        assert.strictEqual(yield* store.appendMessage(msg("ops", 1, "before")), 1)
        assert.deepStrictEqual(yield* store.status, { kind: "postgres", ok: true })
        yield* cut
        assert.deepStrictEqual(yield* store.status, { kind: "postgres", ok: false }, "/health answers 503 meanwhile")
        const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
          failure(effect.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "no answer within 20 s" })))
        const errors = [
          yield* bounded(store.appendMessage(msg("ops", 2, "during"))),
          yield* bounded(store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })),
          yield* bounded(store.getChannel("ops")),
          yield* bounded(store.createChannel({ name: "dev", visibility: "public", createdBy: "aaron", now: "" })),
          yield* bounded(store.redeemInvite({ token: "t", channel: "ops", user: "bob", nowMs: 0 }))
        ]
        assert.deepStrictEqual(
          errors.map((e) => e instanceof StoreError ? e.operation : String(e)),
          ["appendMessage", "readSince", "getChannel", "createChannel", "redeemInvite"]
        )
        assert.deepStrictEqual(
          errors.map((e) => e instanceof StoreError && isUnavailable(e)),
          [true, true, true, true, true],
          "an unreachable database is `unavailable` on the wire (retry later), not `internal` (D-42)"
        )
        yield* restore
        assert.strictEqual(yield* store.appendMessage(msg("ops", 3, "after")), 2, "the refused append took no seq")
        assert.deepStrictEqual(yield* store.status, { kind: "postgres", ok: true })
        assert.deepStrictEqual(
          (yield* readAll(store, "ops")).messages.map((m) => m.seq),
          [1, 2]
        )
      }))

    it.scopedLive("a server that accepts connections but never answers: opening fails after the connect timeout", () =>
      Effect.gen(function*() {
        const port = yield* silentServer
        const error = yield* failure(
          Effect.scoped(open(`postgres://postgres@127.0.0.1:${port}/test`)).pipe(
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "no answer within 20 s" })
          )
        )
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
      }))

    it.scoped("migrations are recorded once per version, and a second open applies none", () =>
      Effect.gen(function*() {
        const url = yield* scratchDatabase
        const { sql } = yield* openWithSql(url)
        const id = yield* Effect.flatMap(open(url), (store) => store.instanceId)
        const second = yield* Effect.flatMap(open(url), (store) => store.instanceId)
        assert.strictEqual(second, id)
        const versions = yield* sql<
          { version: number }
        >`SELECT version FROM conclave_schema_migrations ORDER BY version`
        assert.deepStrictEqual(versions.map((v) => v.version), [1, 2, 3])
        const [tables] = yield* sql<{ n: unknown }>`
          SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema()`
        assert.strictEqual(
          Number(tables?.n),
          12,
          "meta, users, machines, channels, memberships, bans, invites, channel_seq, messages, machine_offers, enroll_codes, migrations"
        )
      }))

    it.scoped("refuses a database written by a newer schema", () =>
      Effect.gen(function*() {
        const url = yield* scratchDatabase
        yield* Effect.scoped(
          Effect.flatMap(
            openWithSql(url),
            ({ sql }) => sql`INSERT INTO conclave_schema_migrations (version) VALUES (99)`
          )
        )
        const error = yield* failure(Effect.scoped(open(url)))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
      }))

    it.scoped("two stores (two nodes) appending to one channel: seqs 1..N, each node's appends resolve in seq order", () =>
      Effect.gen(function*() {
        const url = yield* scratchDatabase
        const a = yield* open(url)
        const b = yield* open(url)
        yield* channel(a, "ops")
        const n = 200
        const resolved = { a: [] as Array<number>, b: [] as Array<number> }
        const seqs = yield* Effect.forEach(
          Array.from({ length: 2 * n }, (_, i) => i),
          (i) => {
            const node = i % 2 === 0 ? "a" : "b"
            return (node === "a" ? a : b).appendMessage(msg("ops", i, `m${i}`)).pipe(
              Effect.tap((seq) => Effect.sync(() => resolved[node].push(seq)))
            )
          },
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual([...seqs].sort((x, y) => x - y), Array.from({ length: 2 * n }, (_, i) => i + 1))
        for (const node of ["a", "b"] as const) {
          const got = resolved[node]
          assert.strictEqual(got.length, n)
          for (let i = 1; i < got.length; i++) {
            assert.isTrue(got[i]! > got[i - 1]!, `node ${node} resolves in seq order`)
          }
        }
        const page = yield* readAll(b, "ops")
        assert.deepStrictEqual(page.messages.map((m) => m.seq), Array.from({ length: 2 * n }, (_, i) => i + 1))
      }))

    it.scoped("seqs per channel: a renamed channel keeps its seqs and goes on from them; a name used again never repeats one", () =>
      Effect.gen(function*() {
        const { store } = yield* subject
        yield* channel(store, "ops")
        yield* channel(store, "dev")
        assert.deepStrictEqual(
          yield* Effect.forEach(["ops", "ops", "dev", "ops"], (name, i) => store.appendMessage(msg(name, i, `m${i}`))),
          [1, 2, 1, 3]
        )
        yield* store.renameChannel("ops", "ops2")
        assert.deepStrictEqual((yield* readAll(store, "ops2")).messages.map((m) => m.seq), [1, 2, 3])
        assert.strictEqual(yield* store.appendMessage(msg("ops2", 10, "after rename")), 4)
        yield* channel(store, "ops") // the old name, again: its seqs go on
        assert.strictEqual(yield* store.appendMessage(msg("ops", 11, "new ops")), 4)
        yield* store.deleteChannel("ops2")
        yield* channel(store, "ops2")
        assert.strictEqual(yield* store.appendMessage(msg("ops2", 12, "new ops2")), 5)
        assert.isTrue(Option.isSome(yield* store.getChannel("ops2")))
      }))

    it.scoped("enrollment codes across four stores (nodes) on one database: issued on one, redeemed once on any; the cap holds", () =>
      Effect.gen(function*() {
        const url = yield* scratchDatabase
        const nodes = yield* Effect.all(Array.from({ length: 4 }, () => open(url)))
        const a = nodes[0]!
        yield* a.registerUser({ username: "aaron", machine: "laptop", pubkey: "key-a", now: "2026-11-24T00:00:00Z" })
        const nowMs = Date.parse("2026-11-24T00:00:00Z")
        const code = "Q".repeat(32)
        const created = yield* a.createEnrollCode({
          code,
          user: "aaron",
          nowMs,
          expiresAtMs: nowMs + 600_000,
          maxOutstanding: 16
        })
        assert.deepStrictEqual(created, { _tag: "Created" })
        const outcomes = yield* Effect.all(
          Array.from({ length: 24 }, (_, i) => nodes[i % 4]!.redeemEnrollCode({ code, nowMs: nowMs + 1 })),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(outcomes.filter((o) => o._tag === "Redeemed"), [{ _tag: "Redeemed", user: "aaron" }])
        assert.strictEqual(outcomes.filter((o) => o._tag === "Refused" && o.reason === "used").length, 23)

        const creates = yield* Effect.all(
          Array.from({ length: 16 }, (_, i) =>
            nodes[i % 4]!.createEnrollCode({
              code: `code-${i}`,
              user: "aaron",
              nowMs,
              expiresAtMs: nowMs + 600_000,
              maxOutstanding: 6
            })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(creates.filter((c) => c._tag === "Created").length, 6)
        assert.strictEqual(yield* nodes[3]!.countEnrollCodes("aaron", nowMs), 6)
      }))
  })
}
