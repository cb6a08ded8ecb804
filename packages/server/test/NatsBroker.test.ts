/**
 * The NATS broker between two "nodes" (two brokers) in one process, on the NATS server of
 * `CONCLAVE_TEST_NATS` (default nats://127.0.0.1:4222) under a prefix of its own per file, and on a
 * `nats-server` the test starts, kills and restarts on a free port of its own.
 *
 * Without a reachable NATS the suite is skipped (one line says so), except under `CI=true`, where
 * that is a failure.
 */
import * as Kit from "@conclave/testkit"
import { freePort, NATS, natsReachable, natsServer, subjectPrefix, within } from "@conclave/testkit/Backends"
import { assert, describe, it } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import { Context, Effect, Exit, Layer, Logger, Option, Queue } from "effect"
import * as Broker from "../src/Broker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import { silentServer } from "./support/SilentServer.js"

const SERVER = NATS
const prefix = subjectPrefix()
const reachable = natsReachable

interface Node {
  readonly broker: Broker.BrokerShape
  readonly inbox: Queue.Queue<Broker.Envelope>
  /** The next `n` envelopes this node's deliverer got, waiting at most 10 s. */
  readonly next: (n: number, what: string) => Effect.Effect<Array<Broker.Envelope>, Error>
}

interface LogLine {
  readonly level: string
  readonly text: string
}

const node = (options: Partial<NatsBroker.Options> = {}, logs?: Queue.Queue<LogLine>) =>
  Effect.gen(function*() {
    const live = NatsBroker.layer({ url: SERVER, prefix, ...options })
    const layer = logs === undefined ? live : live.pipe(
      Layer.provide(Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, logLevel, message }) => {
          Queue.unsafeOffer(logs, {
            level: logLevel.label,
            text: `${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(annotations))}`
          })
        })
      ))
    )
    const broker = Context.get(yield* Layer.build(layer), Broker.Broker)
    const inbox = yield* Queue.unbounded<Broker.Envelope>()
    yield* broker.subscribe((envelope) => {
      Queue.unsafeOffer(inbox, envelope)
    })
    const result: Node = {
      broker,
      inbox,
      next: (n, what) =>
        Effect.gen(function*() {
          const got: Array<Broker.Envelope> = []
          yield* Queue.take(inbox).pipe(
            Effect.map((e) => got.push(e)),
            Effect.repeatN(n - 1),
            within("10 seconds", `${what}: expected ${n} envelopes`),
            Effect.mapError((e) => new Error(`${e.message}, got ${got.length}`))
          )
          return got
        })
    }
    return result
  })

const channelEnvelope = (channel: string, frame: string, exclude: string | null = null): Broker.Envelope => ({
  _tag: "Channel",
  channel,
  frame,
  exclude
})
const sessionEnvelope = (path: string, frame: string): Broker.Envelope => ({ _tag: "Session", path, frame })

/** Poll a node's status until it is `ok` (bounded). */
const awaitStatus = (broker: Broker.BrokerShape, ok: boolean, what: string) =>
  Kit.eventually(
    `${what}: status ok=${ok}`,
    Effect.map(broker.status, (s) => s.ok === ok ? Option.some(s) : Option.none()),
    "20 seconds",
    "25 millis"
  )

/** Nothing further arrived on a node (checked after a barrier that followed everything expected). */
const assertQuiet = (node: Node, what: string) =>
  Effect.map(Queue.size(node.inbox), (size) => assert.strictEqual(size, 0, `${what}: unexpected extra envelopes`))

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a failure, got ${Exit.isSuccess(exit) ? "a success" : "a defect"}`))

describe("NatsBroker (no server needed)", () => {
  it("a subject token is one valid token for any name, distinct per name", () => {
    const names = [
      "",
      "general",
      "a.b",
      "*",
      ">",
      "with space",
      "tab\tname",
      "ünïcødé/チャンネル",
      "alice/laptop/s1",
      "_"
    ]
    const tokens = names.map(NatsBroker.token)
    for (const t of tokens) assert.match(t, /^[A-Za-z0-9_-]+$/)
    assert.strictEqual(new Set(tokens).size, names.length)
    assert.strictEqual(
      NatsBroker.subject("p.q", channelEnvelope("general", "{}")),
      `p.q.ch.${Buffer.from("general").toString("base64url")}`
    )
    assert.strictEqual(NatsBroker.subject("p", sessionEnvelope("", "{}")), "p.s._")
  })

  it.scopedLive("invalid options are a BrokerError before any connection", () =>
    Effect.gen(function*() {
      const prefixError = yield* failure(Layer.build(NatsBroker.layer({ url: SERVER, prefix: "a..b" })))
      assert.strictEqual(prefixError.reason, "InvalidOptions")
      const urlError = yield* failure(Layer.build(NatsBroker.layer({ url: "redis://127.0.0.1:6379" })))
      assert.strictEqual(urlError.reason, "InvalidOptions")
    }))

  it.scopedLive("an unreachable URL at start is a BrokerError, soon, naming no credentials", () =>
    Effect.gen(function*() {
      const error = yield* failure(
        Layer.build(NatsBroker.layer({ url: "nats://conclave:secret@127.0.0.1:1" })).pipe(
          within("10 seconds", "the layer to fail on an unreachable URL")
        )
      )
      assert.instanceOf(error, NatsBroker.BrokerError)
      assert.strictEqual(error._tag, "BrokerError")
      if (error instanceof NatsBroker.BrokerError) {
        assert.strictEqual(error.reason, "Unreachable")
        assert.notInclude(error.message, "secret")
      }
    }))

  it.scopedLive("a server that accepts but never answers: the layer fails after the connect timeout", () =>
    Effect.gen(function*() {
      const port = yield* silentServer
      const error = yield* failure(
        Layer.build(NatsBroker.layer({ url: `nats://127.0.0.1:${port}`, connectTimeout: "1 second" })).pipe(
          within("10 seconds", "the layer to fail on a silent server")
        )
      )
      assert.instanceOf(error, NatsBroker.BrokerError)
    }))

  it.effect("the memory broker reports itself ok", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.makeMemory
      assert.deepStrictEqual(yield* broker.status, { kind: "memory", ok: true })
    }))
})

if (!reachable) {
  if (process.env["CI"] === "true") {
    describe("NatsBroker", () => {
      it("NATS is reachable (required under CI=true)", () => {
        assert.fail(`no NATS at ${SERVER}`)
      })
    })
  } else {
    console.log(`skipped: no NATS at ${SERVER}`)
    describe.skip("NatsBroker", () => {
      it("needs NATS", () => {})
    })
  }
} else {
  describe("NatsBroker", () => {
    it.scopedLive("a channel envelope published on A is delivered once on A and once on B, exclude carried", () =>
      Effect.gen(function*() {
        const a = yield* node()
        const b = yield* node()
        assert.deepStrictEqual(yield* a.broker.status, { kind: "nats", ok: true })
        const sent = channelEnvelope("general", "{\"type\":\"channel_msg\"}", "alice/laptop/s1")
        a.broker.publish(sent)
        assert.deepStrictEqual(yield* a.next(1, "A (local)"), [sent])
        assert.deepStrictEqual(yield* b.next(1, "B"), [sent])
        // B's barrier reaches A after any echo of `sent` would have (NATS keeps per-connection order).
        const barrier = channelEnvelope("general", "{\"barrier\":1}")
        b.broker.publish(barrier)
        assert.deepStrictEqual(yield* b.next(1, "B (local barrier)"), [barrier])
        assert.deepStrictEqual(yield* a.next(1, "A (barrier)"), [barrier], "A got its own envelope back")
        yield* assertQuiet(a, "A")
        yield* assertQuiet(b, "B")
      }))

    it.scopedLive("a session envelope published on B is delivered once on B and once on A", () =>
      Effect.gen(function*() {
        const a = yield* node()
        const b = yield* node()
        const sent = sessionEnvelope("bob/desk/s2", "{\"type\":\"whisper\"}")
        b.broker.publish(sent)
        assert.deepStrictEqual(yield* b.next(1, "B (local)"), [sent])
        assert.deepStrictEqual(yield* a.next(1, "A"), [sent])
        const barrier = sessionEnvelope("bob/desk/s2", "{\"barrier\":2}")
        a.broker.publish(barrier)
        assert.deepStrictEqual(yield* a.next(1, "A (local barrier)"), [barrier])
        assert.deepStrictEqual(yield* b.next(1, "B (barrier)"), [barrier], "B got its own envelope back")
        yield* assertQuiet(a, "A")
        yield* assertQuiet(b, "B")
      }))

    it.scopedLive("1 000 envelopes from one publisher arrive in order (channels and sessions interleaved)", () =>
      Effect.gen(function*() {
        const a = yield* node()
        const b = yield* node()
        const sent = Array.from(
          { length: 1000 },
          (_, i) =>
            i % 3 === 2
              ? sessionEnvelope(`user${i % 7}/m/s`, `{"i":${i}}`)
              : channelEnvelope(`ch${i % 5}`, `{"i":${i}}`, i % 2 === 0 ? null : "x/y/z")
        )
        for (const e of sent) a.broker.publish(e)
        assert.deepStrictEqual(yield* a.next(1000, "A (local)"), sent)
        assert.deepStrictEqual(yield* b.next(1000, "B"), sent)
      }))

    it.scopedLive("a message that is not an envelope for its subject is dropped with a warning (no body logged)", () =>
      Effect.gen(function*() {
        const logs = yield* Queue.unbounded<LogLine>()
        const b = yield* node({}, logs)
        const raw = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: SERVER })),
          (nc) => Effect.promise(() => nc.close())
        )
        const good = channelEnvelope("x", "{\"fine\":true}")
        const on = NatsBroker.subject(prefix, good)
        raw.publish(on, "SECRET-BODY not json")
        raw.publish(on, JSON.stringify({ _tag: "Nope", frame: "SECRET-BODY" }))
        raw.publish(on, JSON.stringify(channelEnvelope("not-x", "SECRET-BODY")))
        raw.publish(`${prefix}.s.${NatsBroker.token("x")}`, JSON.stringify(good))
        raw.publish(on, JSON.stringify(good))
        assert.deepStrictEqual(yield* b.next(1, "B (the one good message)"), [good])
        yield* assertQuiet(b, "B")
        const warnings: Array<LogLine> = []
        yield* Queue.take(logs).pipe(
          Effect.tap((line) => {
            if (line.level === "WARN") warnings.push(line)
          }),
          Effect.repeat({ until: () => warnings.length === 4 }),
          within("10 seconds", "four warnings")
        )
        for (const line of warnings) {
          assert.include(line.text, "dropped a broker message")
          assert.notInclude(line.text, "SECRET-BODY")
        }
      }))

    it.scopedLive("a frame above NATS's max_payload reaches this node's sessions only, with a warning", () =>
      Effect.gen(function*() {
        const logs = yield* Queue.unbounded<LogLine>()
        const a = yield* node({}, logs)
        const b = yield* node()
        const huge = channelEnvelope("big", `"${"x".repeat(2 * 1024 * 1024)}"`)
        a.broker.publish(huge)
        assert.strictEqual((yield* a.next(1, "A (local)"))[0], huge)
        const warning = yield* Queue.take(logs).pipe(
          Effect.repeat({ until: (line) => line.level === "WARN" }),
          within("5 seconds", "a warning about the refused envelope")
        )
        assert.include(warning.text, "NATS refused an envelope")
        assert.isBelow(warning.text.length, 1000, "the warning carries no body")
        const small = channelEnvelope("big", "{}")
        a.broker.publish(small)
        assert.deepStrictEqual(yield* b.next(1, "B (only the small one)"), [small])
      }))

    it.scopedLive("while NATS is away the buffer is bounded: the overflow is dropped and counted, the rest resent", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const first = yield* natsServer(port)
        const logs = yield* Queue.unbounded<LogLine>()
        const a = yield* node({ url: `nats://127.0.0.1:${port}`, reconnectWait: "100 millis", bufferBytes: 1000 }, logs)
        yield* first.kill
        yield* awaitStatus(a.broker, false, "A after the kill")
        const during = Array.from({ length: 100 }, (_, i) => channelEnvelope("ops", `{"during":${i}}`))
        for (const e of during) a.broker.publish(e)
        yield* natsServer(port)
        yield* awaitStatus(a.broker, true, "A after the restart")
        const line = yield* Queue.take(logs).pipe(
          Effect.repeat({ until: (l) => l.text.includes("connected again") }),
          within("5 seconds", "the reconnect line")
        )
        const counts = /"resent":(\d+).*"dropped":(\d+)|"dropped":(\d+).*"resent":(\d+)/.exec(line.text)
        assert.isNotNull(counts, line.text)
        const resent = Number(counts?.[1] ?? counts?.[4])
        const dropped = Number(counts?.[2] ?? counts?.[3])
        const bytes = JSON.stringify(during[0]).length
        assert.strictEqual(resent + dropped, 100)
        assert.isAtMost(resent * bytes, 1000 + 100)
        assert.isAbove(dropped, 0)
      }))

    it.scopedLive("NATS going away: status false, publish neither fails nor blocks; back on the same port, delivery resumes", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const url = `nats://127.0.0.1:${port}`
        const first = yield* natsServer(port)
        const options: Partial<NatsBroker.Options> = { url, reconnectWait: "100 millis" }
        const a = yield* node(options)
        const b = yield* node(options)
        const before = channelEnvelope("ops", "{\"n\":\"before\"}")
        a.broker.publish(before)
        assert.deepStrictEqual(yield* a.next(1, "A before"), [before])
        assert.deepStrictEqual(yield* b.next(1, "B before"), [before])

        yield* first.kill
        yield* awaitStatus(a.broker, false, "A after the kill")
        yield* awaitStatus(b.broker, false, "B after the kill")
        const during = Array.from({ length: 50 }, (_, i) => channelEnvelope("ops", `{"during":${i}}`))
        for (const e of during) a.broker.publish(e)
        assert.deepStrictEqual(yield* a.next(50, "A during (local delivery goes on)"), during)

        yield* natsServer(port)
        yield* awaitStatus(a.broker, true, "A after the restart")
        yield* awaitStatus(b.broker, true, "B after the restart")
        const after = channelEnvelope("ops", "{\"n\":\"after\"}")
        a.broker.publish(after)
        assert.deepStrictEqual(yield* a.next(1, "A after"), [after])
        // B may or may not have resubscribed before A resent its buffer: whatever of it arrived
        // came in order, before `after`.
        const got: Array<Broker.Envelope> = []
        yield* b.next(1, "B after").pipe(
          Effect.tap((es) => got.push(...es)),
          Effect.repeat({ until: () => JSON.stringify(got[got.length - 1]) === JSON.stringify(after) })
        )
        const resent = got.slice(0, -1)
        assert.deepStrictEqual(resent, during.slice(during.length - resent.length))
        assert.deepStrictEqual(got[got.length - 1], after)
      }))
  })
}
