import { Errors, type Frames, Limits } from "@conclave/protocol"
import { connect, dial, errorOf, handshake, newIdentity, op, register, startServer } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Exit, Layer, TestClock } from "effect"
import { Enrollments, nextBrowserName } from "../src/Enrollments.js"
import * as Retention from "../src/Retention.js"
import * as ServerConfig from "../src/ServerConfig.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store } from "../src/Store.js"

const codeOf = (reply: Frames.Reply): string => {
  if (reply.type !== "enrollment") return assert.fail(`expected an enrollment, got ${JSON.stringify(reply)}`)
  return reply.code
}

describe("Enrollments (D-51)", () => {
  it.effect("a code is single-use, expires after 10 minutes and is capped per user", () =>
    Effect.gen(function*() {
      const store = yield* Store
      for (const [i, username] of ["aaron", "bob", "carol"].entries()) {
        const pubkey = newIdentity().pubkey
        yield* store.registerUser({ username, machine: "laptop", pubkey, now: new Date(i).toISOString() })
      }
      const enrollments = yield* Enrollments
      const first = yield* enrollments.create("aaron")
      assert.match(first.code, /^[A-Za-z0-9_-]{32}$/)
      assert.strictEqual(first.expires_at, new Date(Limits.ENROLL_CODE_TTL_MS).toISOString())
      assert.deepStrictEqual(yield* enrollments.take(first.code), Either.right("aaron"))
      assert.deepStrictEqual(yield* enrollments.take(first.code), Either.left("used"))
      assert.deepStrictEqual(yield* enrollments.take("A".repeat(32)), Either.left("unknown"))

      const second = yield* enrollments.create("aaron")
      yield* TestClock.adjust(Duration.millis(Limits.ENROLL_CODE_TTL_MS - 1))
      const third = yield* enrollments.create("aaron")
      yield* TestClock.adjust(Duration.millis(1))
      assert.deepStrictEqual(yield* enrollments.take(second.code), Either.left("expired"))
      // released after a failed enrollment, a code can be taken again
      assert.deepStrictEqual(yield* enrollments.take(third.code), Either.right("aaron"))
      yield* enrollments.release(third.code)
      assert.deepStrictEqual(yield* enrollments.take(third.code), Either.right("aaron"))
      // long after expiry a code is forgotten
      yield* TestClock.adjust(Duration.millis(2 * Limits.ENROLL_CODE_TTL_MS))
      assert.deepStrictEqual(yield* enrollments.take(second.code), Either.left("unknown"))

      for (let i = 0; i < 16; i++) yield* enrollments.create("bob")
      const refused = yield* Effect.exit(enrollments.create("bob"))
      assert.isTrue(Exit.isFailure(refused))
      if (Exit.isFailure(refused) && refused.cause._tag === "Fail") {
        const error = refused.cause.error
        assert.strictEqual(error._tag === "ProtocolFailure" ? error.error.kind : error._tag, "rate_limited")
      }
      // other users are not affected
      yield* enrollments.create("carol")

      // the retention sweep forgets codes long expired: even a redeem dated back finds nothing
      const late = yield* enrollments.create("carol")
      const issuedAt = yield* Clock.currentTimeMillis
      yield* TestClock.adjust(Duration.millis(2 * Limits.ENROLL_CODE_TTL_MS))
      yield* Retention.sweepOnce
      assert.deepStrictEqual(yield* store.redeemEnrollCode({ code: late.code, nowMs: issuedAt }), {
        _tag: "Refused",
        reason: "unknown"
      })
    }).pipe(Effect.provide(
      Enrollments.Default.pipe(Layer.provideMerge(SqliteStore.layerMemory), Layer.provideMerge(ServerConfig.layer()))
    )))

  it("browser-N names continue after the highest one", () => {
    assert.strictEqual(nextBrowserName([]), "browser-1")
    assert.strictEqual(nextBrowserName(["laptop", "browser-1", "browser-7", "browser-x", "browser-"]), "browser-8")
  })
})

describe("Enrollment over the wire (D-51)", () => {
  it.scopedLive("a code enrolls a browser key as browser-N, which then authenticates as a console", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron", "laptop", "cli", "cli")
      const code = codeOf(yield* aaron.request({ type: "enroll_create" }))

      const browser = newIdentity()
      const enrolled = yield* connect(url, { identity: browser, handle: "console", client: "console", enroll: code })
      assert.deepStrictEqual(enrolled.path, { user: "aaron", machine: "browser-1", session: "console" })

      // the ordinary handshake afterwards, and a second browser is browser-2
      const again = yield* connect(url, { identity: browser, handle: "tab2", client: "console" })
      assert.deepStrictEqual(again.path, { user: "aaron", machine: "browser-1", session: "tab2" })
      const code2 = codeOf(yield* again.request({ type: "enroll_create" }))
      const other = yield* connect(url, { identity: newIdentity(), handle: "c", client: "console", enroll: code2 })
      assert.strictEqual(other.path.machine, "browser-2")

      const machines = yield* aaron.request({ type: "list_machines" })
      assert.sameMembers(
        (machines as { machines: ReadonlyArray<{ name: string }> }).machines.map((m) => m.name),
        ["laptop", "browser-1", "browser-2"]
      )

      // a console posts with origin human
      yield* aaron.request({ type: "admin", op: { kind: "create_channel", name: "ops", visibility: "public" } })
      yield* aaron.request({ type: "join", channel: "ops", token: null })
      yield* again.request({ type: "join", channel: "ops", token: null })
      yield* again.request({ type: "channel_msg", channel: "ops", payload: { kind: "plain", text: "hi" } })
      const delivered = yield* aaron.next()
      assert.strictEqual(delivered.type, "channel_msg")
      assert.strictEqual((delivered as { origin: string }).origin, "human")

      // sign-out: the browser removes its own machine; its key no longer authenticates
      const removed = yield* again.request(op({ kind: "machine_remove", name: "browser-1" }))
      assert.strictEqual(removed.type, "ack")
      const gone = yield* dial(url)
      assert.deepStrictEqual(
        errorOf(yield* handshake(gone, { identity: browser, handle: "console", client: "console" })),
        { kind: "unauthorized", message: Errors.Messages.unknownKey }
      )
    }))

  it.scopedLive("reused, unknown and malformed codes, a key enrolled elsewhere and a bad proof are refused", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron", "laptop", "cli", "cli")
      const code = codeOf(yield* aaron.request({ type: "enroll_create" }))
      yield* connect(url, { identity: newIdentity(), handle: "c", client: "console", enroll: code })

      const refusal = (options: Parameters<typeof handshake>[1]) =>
        Effect.gen(function*() {
          const client = yield* dial(url)
          const answer = errorOf(yield* handshake(client, options))
          const closed = yield* client.closed
          assert.strictEqual(closed.code, 1008)
          return answer
        })

      assert.deepStrictEqual(
        yield* refusal({ identity: newIdentity(), handle: "c", client: "console", enroll: code }),
        { kind: "unauthorized", message: Errors.Messages.enrollCodeUsed }
      )
      assert.deepStrictEqual(
        yield* refusal({ identity: newIdentity(), handle: "c", client: "console", enroll: "B".repeat(32) }),
        { kind: "unauthorized", message: Errors.Messages.enrollCodeUnknown }
      )
      for (const bad of ["short", "A".repeat(33), "A".repeat(31) + "!", ""]) {
        const e = yield* refusal({ identity: newIdentity(), handle: "c", client: "console", enroll: bad })
        assert.strictEqual(e.kind, "malformed_frame", bad)
        assert.include(e.message, "enroll")
      }

      // a key already enrolled (aaron's laptop key) cannot be enrolled again, and the code survives
      const fresh = codeOf(yield* aaron.request({ type: "enroll_create" }))
      const e1 = yield* refusal({ identity: aaron.identity, handle: "c", client: "console", enroll: fresh })
      assert.deepStrictEqual(e1, { kind: "malformed_frame", message: Errors.Messages.keyAlreadyEnrolled })
      // a signature made for another host proves nothing, and the code survives that too
      const e2 = yield* refusal({
        identity: newIdentity(),
        handle: "c",
        client: "console",
        enroll: fresh,
        signHost: "elsewhere.example:1"
      })
      assert.strictEqual(e2.kind, "unauthorized")
      const ok = yield* connect(url, { identity: newIdentity(), handle: "c", client: "console", enroll: fresh })
      assert.strictEqual(ok.path.machine, "browser-2")

      // enroll must be followed by auth
      const client = yield* dial(url)
      yield* client.send({ type: "hello", protocol_version: 1, session: "c", host: null, client: "console" })
      assert.strictEqual((yield* client.next()).type, "challenge")
      yield* client.send({ type: "enroll", code: "C".repeat(32), pubkey: newIdentity().pubkey })
      yield* client.send({ type: "ping" })
      assert.deepStrictEqual(errorOf(yield* client.next()), {
        kind: "malformed_frame",
        message: Errors.Messages.expectedAuthAfterEnroll
      })

      // enroll is a handshake frame: an established session is told so
      yield* aaron.send({ type: "enroll", code: "C".repeat(32), pubkey: newIdentity().pubkey })
      assert.deepStrictEqual(errorOf(yield* aaron.next()), {
        kind: "malformed_frame",
        message: Errors.Messages.unexpectedFrame
      })
    }))

  it.scopedLive("an expired code gets a clear refusal", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ enrollCodeTtl: Duration.millis(20) })
      const aaron = yield* register(url, "aaron", "laptop", "cli", "cli")
      const code = codeOf(yield* aaron.request({ type: "enroll_create" }))
      // the code's validity is what is under test: let it pass
      yield* Effect.sleep(Duration.millis(40))
      const client = yield* dial(url)
      const answer = errorOf(
        yield* handshake(client, { identity: newIdentity(), handle: "c", client: "console", enroll: code })
      )
      assert.deepStrictEqual(answer, { kind: "unauthorized", message: Errors.Messages.enrollCodeExpired })
    }))
})
