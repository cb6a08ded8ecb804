import { Link } from "@conclave/bridge"
import type { Connection } from "@conclave/client"
import { Identity } from "@conclave/client"
import type { Frames } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, Queue, Stream, TestClock } from "effect"
import { harness, ME, S1, S2, settle } from "./Harness.js"

const identity = Identity.generate()

interface Scripted {
  readonly connect: Link.Connect
  readonly attempts: Array<string>
  readonly pings: { count: number }
  /** Close the current connection (ends its unsolicited stream). */
  readonly drop: Effect.Effect<void>
  readonly push: (frame: Frames.ServerFrame) => Effect.Effect<void>
}

/** `failures` failed attempts, then connections that stay up until dropped. */
const scripted = (failures: number, instanceId?: string): Scripted => {
  const attempts: Array<string> = []
  const pings = { count: 0 }
  let current: Queue.Queue<Option.Option<Frames.ServerFrame>> | undefined
  const connect: Link.Connect = (options) =>
    Effect.gen(function*() {
      attempts.push(options.handle)
      if (attempts.length <= failures) {
        return yield* Effect.fail<Connection.ConnectError>({
          _tag: "ConnectFailed",
          url: options.url,
          cause: "refused"
        } as unknown as Connection.ConnectError)
      }
      if (instanceId !== undefined && options.onInstanceId !== undefined) yield* options.onInstanceId(instanceId)
      const q = yield* Queue.unbounded<Option.Option<Frames.ServerFrame>>()
      current = q
      let closed = false
      yield* Effect.addFinalizer(() => Effect.sync(() => void (closed = true)))
      return {
        url: options.url,
        handle: options.handle,
        instanceId: Option.fromNullable(instanceId),
        path: ME,
        admin: false,
        request: () => Effect.never,
        send: () => Effect.sync(() => void (closed ? undefined : (pings.count += 1))),
        unsolicited: Stream.fromQueue(q).pipe(Stream.takeWhile(Option.isSome), Stream.map((o) => o.value)),
        closed: Effect.never,
        isClosed: Effect.sync(() => closed),
        closeCode: Effect.succeed(undefined)
      } satisfies Connection.Connection
    })
  return {
    connect,
    attempts,
    pings,
    drop: Effect.suspend(() => (current === undefined ? Effect.void : Queue.offer(current, Option.none()))),
    push: (frame) =>
      Effect.suspend(() => (current === undefined ? Effect.void : Queue.offer(current, Option.some(frame))))
  }
}

describe("Link", () => {
  it("S-154 same-server claims", () =>
    Effect.gen(function*() {
      const claims = Link.makeClaims()
      yield* claims.claim("id-1", "ws://a")
      yield* claims.claim("id-1", "ws://a")
      const refused = yield* Effect.either(claims.claim("id-1", "ws://b"))
      assert.isTrue(Either.isLeft(refused))
      if (Either.isLeft(refused)) {
        assert.strictEqual(refused.left.canonical, "ws://a")
        assert.include(refused.left.message, "is the same server as")
      }
      yield* claims.claim("id-2", "ws://b")
    }).pipe(Effect.runPromise))

  it.scoped("S-153 retries with backoff 200 ms, 400 ms, then signals up (3 attempts)", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const s = scripted(2)
      yield* Link.run({ url: S1, identity, dispatcher: h.d, claims: Link.makeClaims(), connect: s.connect }).pipe(
        Effect.forkScoped
      )
      yield* settle(() => s.attempts.length === 1, "first attempt")
      yield* TestClock.adjust("199 millis")
      assert.strictEqual(s.attempts.length, 1)
      yield* TestClock.adjust("1 millis")
      yield* settle(() => s.attempts.length === 2, "second attempt after 200 ms")
      yield* TestClock.adjust("399 millis")
      assert.strictEqual(s.attempts.length, 2)
      yield* TestClock.adjust("1 millis")
      yield* settle(() => h.d.isUp(S1), "link up")
      assert.strictEqual(s.attempts.length, 3)
    }))

  it.scoped("keepalive pings every 20 s while up, none while down; shutdown drops the link", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const s = scripted(0)
      yield* Link.run({ url: S1, identity, dispatcher: h.d, claims: Link.makeClaims(), connect: s.connect }).pipe(
        Effect.forkScoped
      )
      yield* settle(() => Effect.map(h.d.isUp(S1), (up) => up && s.pings.count === 1), "first ping immediately")
      yield* TestClock.adjust("20 seconds")
      yield* settle(() => s.pings.count === 2, "second ping")
      yield* s.push({ type: "shutdown", reason: "server shutting down" })
      yield* settle(() => Effect.map(h.d.isUp(S1), (up) => !up), "down after shutdown")
      const pings = s.pings.count
      assert.include(h.injected.at(-1)!.content, "Disconnected from")
      // the next attempt is 200 ms later; before that no pings are queued
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(s.pings.count, pings)
      yield* TestClock.adjust("100 millis")
      yield* settle(() => h.d.isUp(S1), "reconnected")
      assert.strictEqual(s.attempts.length, 2)
    }))

  it.scoped("backoff resets only after a 30 s stable link", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const s = scripted(0)
      yield* Link.run({ url: S1, identity, dispatcher: h.d, claims: Link.makeClaims(), connect: s.connect }).pipe(
        Effect.forkScoped
      )
      yield* settle(() => h.d.isUp(S1), "up")
      // short-lived links: 200 ms, then 400 ms
      yield* s.drop
      yield* settle(() => Effect.map(h.d.isUp(S1), (up) => !up), "down")
      yield* TestClock.adjust("200 millis")
      yield* settle(() => h.d.isUp(S1), "up 2")
      yield* s.drop
      yield* settle(() => Effect.map(h.d.isUp(S1), (up) => !up), "down 2")
      yield* TestClock.adjust("399 millis")
      assert.isFalse(yield* h.d.isUp(S1))
      yield* TestClock.adjust("1 millis")
      yield* settle(() => h.d.isUp(S1), "up 3 after 400 ms")
      // stable link: the next delay is back to 200 ms
      yield* TestClock.adjust("31 seconds")
      yield* s.drop
      yield* settle(() => Effect.map(h.d.isUp(S1), (up) => !up), "down 3")
      yield* TestClock.adjust("200 millis")
      yield* settle(() => h.d.isUp(S1), "up 4 after 200 ms")
    }))

  it.scoped("a refused claim disables the link forever", () =>
    Effect.gen(function*() {
      const h = yield* harness({
        servers: [
          { url: S1, username: "a", machine: "m" },
          { url: S2, username: "a", machine: "m" }
        ]
      })
      const claims = Link.makeClaims()
      const a = scripted(0, "same-id")
      const b = scripted(0, "same-id")
      yield* Link.run({ url: S1, identity, dispatcher: h.d, claims, connect: a.connect }).pipe(Effect.forkScoped)
      yield* settle(() => h.d.isUp(S1), "canonical up")
      const fiber = yield* Link.run({ url: S2, identity, dispatcher: h.d, claims, connect: b.connect }).pipe(
        Effect.forkScoped
      )
      yield* Fiber.join(fiber)
      assert.strictEqual(b.attempts.length, 1)
      assert.include(h.injected.at(-1)!.content, `${S2} is the same server as ${S1}`)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(b.attempts.length, 1)
    }))

  it.scoped("each attempt dials the current handle (rename applies to the next dial)", () =>
    Effect.gen(function*() {
      const h = yield* harness({ handle: { name: "proj", explicit: false } })
      const s = scripted(0)
      yield* Link.run({ url: S1, identity, dispatcher: h.d, claims: Link.makeClaims(), connect: s.connect }).pipe(
        Effect.forkScoped
      )
      const untilUp = Effect.gen(function*() {
        for (let i = 0; i < 100 && !(yield* h.d.isUp(S1)); i++) {
          yield* TestClock.adjust("100 millis")
          for (let j = 0; j < 20; j++) yield* Effect.yieldNow()
        }
        assert.isTrue(yield* h.d.isUp(S1), "link came back")
      })
      yield* settle(() => h.d.isUp(S1), "up")
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("1 second")
        yield* s.drop
        yield* settle(() => Effect.map(h.d.isUp(S1), (up) => !up), `down ${i}`)
        yield* untilUp
      }
      assert.deepStrictEqual(s.attempts, ["proj", "proj", "proj", "proj-2"])
    }))
})
