import { Errors, type Names } from "@conclave/protocol"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option, Scope, TestClock } from "effect"
import * as Broker from "../src/Broker.js"
import { type Conn, Hub } from "../src/Hub.js"
import { ReaperLive, reapOnce } from "../src/Reaper.js"
import * as ServerConfig from "../src/ServerConfig.js"
import * as SqliteStore from "../src/SqliteStore.js"

const HubTest = Hub.Default.pipe(
  Layer.provideMerge(Layer.mergeAll(SqliteStore.layerMemory, Broker.layerMemory, ServerConfig.layer()))
)

interface FakeConn extends Conn {
  readonly frames: Array<string>
  killed: string | undefined
}

/** A connection whose outbox holds `capacity` frames and is never drained. */
const fakeConn = (capacity = 1024): FakeConn => {
  const conn: FakeConn = {
    frames: [],
    killed: undefined,
    send: (frame) => {
      if (conn.frames.length >= capacity) return false
      conn.frames.push(typeof frame === "string" ? frame : frame.payload.toString("utf8"))
      return true
    },
    kill: (reason) => {
      conn.killed ??= reason
    }
  }
  return conn
}

const path = (user: string, machine = "m", session = "s"): Names.SessionPath => ({ user, machine, session })

const attach = (p: Names.SessionPath, conn: FakeConn) =>
  Effect.gen(function*() {
    const hub = yield* Hub
    const { entry } = yield* hub.attach({ path: p, origin: "agent", conn, now: 0 })
    return entry
  })

describe("Hub", () => {
  it.effect("the reaper kills sessions idle for 60 s and spares those that pinged (S-087, S-088)", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      yield* TestClock.setTime(1_000_000)
      const idle = fakeConn()
      const busy = fakeConn()
      const idleEntry = yield* hub.attach({ path: path("idle"), origin: "agent", conn: idle, now: 1_000_000 })
      const busyEntry = yield* hub.attach({ path: path("busy"), origin: "agent", conn: busy, now: 1_000_000 })
      yield* TestClock.adjust("50 seconds")
      yield* hub.touch(busyEntry.entry, 1_050_000)
      assert.strictEqual(yield* reapOnce, 0)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* reapOnce, 1)
      assert.strictEqual(idle.killed, Errors.KillReasons.idle)
      assert.isFalse(yield* hub.isPresent(idleEntry.entry))
      assert.isTrue(yield* hub.isPresent(busyEntry.entry))
      assert.isUndefined(busy.killed)
    }).pipe(Effect.provide(HubTest)))

  it.scoped("the reaper layer ticks on the Clock: first at startup, then every 15 s", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      // already idle for 60 s at startup: the first tick (at once) reaps it
      const stale = fakeConn()
      yield* hub.attach({ path: path("stale"), origin: "agent", conn: stale, now: -60_000 })
      // last frame at t = 1 s: idle for 60 s at t = 61 s, so the tick at 75 s (not 60 s) reaps it
      const conn = fakeConn()
      yield* hub.attach({ path: path("a"), origin: "agent", conn, now: 1_000 })
      yield* Layer.build(ReaperLive)
      yield* TestClock.adjust("0 millis")
      assert.strictEqual(stale.killed, Errors.KillReasons.idle)
      yield* TestClock.adjust("74 seconds")
      assert.isUndefined(conn.killed)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(conn.killed, Errors.KillReasons.idle)
      assert.strictEqual(yield* hub.size, 0)
    }).pipe(Effect.provide(HubTest)))

  it.effect("a slow consumer is force-dropped when its outbox is full (S-078)", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      const bob = fakeConn(1)
      const carol = fakeConn()
      const bobEntry = yield* attach(path("bob"), bob)
      const carolEntry = yield* attach(path("carol"), carol)
      yield* hub.subscribe(bobEntry, "ops")
      yield* hub.subscribe(carolEntry, "ops")
      hub.publish("ops", "one", "aaron/m/s")
      assert.isUndefined(bob.killed)
      hub.publish("ops", "two", "aaron/m/s")
      assert.strictEqual(bob.killed, Errors.KillReasons.slowConsumer)
      assert.deepStrictEqual(carol.frames, ["one", "two"])
      assert.deepStrictEqual(hub.subscribersOf("ops"), [carolEntry.path])
    }).pipe(Effect.provide(HubTest)))

  it.effect("fan-out skips only the sender's exact path", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      const sender = fakeConn()
      const sibling = fakeConn()
      const s1 = yield* attach(path("aaron", "m", "s1"), sender)
      const s2 = yield* attach(path("aaron", "m", "s2"), sibling)
      yield* hub.subscribe(s1, "ops")
      yield* hub.subscribe(s2, "ops")
      hub.publish("ops", "hi", s1.key)
      assert.deepStrictEqual(sender.frames, [])
      assert.deepStrictEqual(sibling.frames, ["hi"])
    }).pipe(Effect.provide(HubTest)))

  it.effect("supersede kills the old entry; the old entry's detach cannot evict its replacement", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      const oldConn = fakeConn()
      const newConn = fakeConn()
      const old = yield* attach(path("aaron"), oldConn)
      yield* hub.subscribe(old, "ops")
      const { entry: fresh, superseded } = yield* hub.attach({
        path: path("aaron"),
        origin: "agent",
        conn: newConn,
        now: 0
      })
      assert.isTrue(superseded)
      assert.strictEqual(oldConn.killed, Errors.KillReasons.superseded)
      assert.deepStrictEqual(hub.subscribersOf("ops"), [])
      assert.isFalse(yield* hub.detach(old))
      assert.isTrue(yield* hub.isPresent(fresh))
      assert.strictEqual(yield* hub.subscribe(old, "ops"), "absent")
      assert.isTrue(yield* hub.detach(fresh))
      assert.isFalse(yield* hub.detach(fresh))
    }).pipe(Effect.provide(HubTest)))

  it.effect("a ban in the mirror wins over a subscribe; bans move with renames and die with deletes", () =>
    Effect.gen(function*() {
      const hub = yield* Hub
      const e = yield* attach(path("bob"), fakeConn())
      yield* hub.addBan("ops", "bob")
      assert.strictEqual(yield* hub.subscribe(e, "ops"), "banned")
      yield* hub.renameChannel("ops", "ops2")
      assert.isFalse(yield* hub.isBanned("ops", "bob"))
      assert.isTrue(yield* hub.isBanned("ops2", "bob"))
      yield* hub.dropChannel("ops2")
      assert.isFalse(yield* hub.isBanned("ops2", "bob"))
      assert.strictEqual(yield* hub.subscribe(e, "ops2"), "subscribed")
    }).pipe(Effect.provide(HubTest)))
  it.live("a hub built in an uninterruptible region (inside an acquire) still stops when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Effect.uninterruptible(Layer.buildWithScope(HubTest, scope))
      yield* Scope.close(scope, Exit.void).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the hub's scope did not close") })
      )
    }))
  it.scoped("a store that cannot load the bans fails startup with a typed StoreError, not a defect", () =>
    Effect.gen(function*() {
      const storage = SqliteStore.layerClient.pipe(
        Layer.provideMerge(SqliteStore.layerSqlite({ filename: ":memory:" }))
      )
      const context = yield* Layer.build(storage)
      const sql = yield* Effect.provide(SqlClient.SqlClient, context)
      yield* Effect.orDie(sql`DROP TABLE bans`)
      const exit = yield* Layer.build(
        Hub.Default.pipe(Layer.provide(Layer.merge(Broker.layerMemory, ServerConfig.layer())))
      ).pipe(
        Effect.provide(context),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const failure = Cause.failureOption(exit.cause)
        assert.isTrue(Option.isSome(failure), `expected a typed failure, got ${Cause.pretty(exit.cause)}`)
        assert.strictEqual(Option.getOrThrow(failure)._tag, "StoreError")
      }
    }))
})
