/**
 * The permission relay to remote approvers (SPEC §4.5.3): a bridge session relays its Claude Code
 * session's permission request to the console sessions of its own user, on any node, and a verdict
 * goes back to the asking session — only from a session of that same user.
 */
import { connect, errorOf, eventually, expectType, noId, register, type Session, startServer } from "@conclave/testkit"
import { describeWith, NATS, scratchDatabase, subjectPrefix } from "@conclave/testkit/Backends"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, ExecutionStrategy, Option, Scope } from "effect"
import * as NatsBroker from "../src/NatsBroker.js"
import * as PgStore from "../src/PgStore.js"

const relay = (s: Session, requestId = "abcde") =>
  s.request({ type: "permission_request", request_id: requestId, tool_name: "Bash", description: "run `ls -la`" })

const verdict = (s: Session, target: Session["path"], behavior: string, requestId = "abcde") =>
  s.request({ type: "permission_verdict", target, request_id: requestId, behavior })

describe("Permission relay (SPEC §4.5.3)", () => {
  it.scopedLive("a request reaches the consoles of the same user only; a verdict reaches the asking session", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const bridge = yield* register(url, "alice", "laptop", "agent", "bridge")
      const console1 = yield* connect(url, { identity: bridge.identity, handle: "web", client: "console" })
      const cli = yield* connect(url, { identity: bridge.identity, handle: "term", client: "cli" })
      const mallory = yield* register(url, "mallory", "box", "m", "console")

      const ack = expectType(yield* relay(bridge), "ack")
      assert.strictEqual(ack.detail, "relayed to 1 console session")
      assert.deepStrictEqual(yield* console1.next(), {
        type: "permission_request",
        from: bridge.path,
        request_id: "abcde",
        tool_name: "Bash",
        description: "run `ls -la`"
      })
      yield* cli.expectNothingQueued()
      yield* mallory.expectNothingQueued()

      // another user may not answer it
      const refused = errorOf(yield* verdict(mallory, bridge.path, "allow"))
      assert.strictEqual(refused.kind, "unauthorized")
      assert.include(refused.message, "only a session of user `alice`")
      yield* bridge.expectNothingQueued()

      assert.deepStrictEqual(noId(yield* verdict(console1, bridge.path, "allow")), {
        type: "ack",
        detail: null,
        seq: null
      })
      assert.deepStrictEqual(yield* bridge.next(), {
        type: "permission_verdict",
        from: console1.path,
        request_id: "abcde",
        behavior: "allow"
      })

      // the CLI of the same user may answer too
      expectType(yield* verdict(cli, bridge.path, "deny", "fghij"), "ack")
      assert.strictEqual(expectType(yield* bridge.next(), "permission_verdict").behavior, "deny")

      // an offline target is not_found
      yield* bridge.close
      const gone = errorOf(
        yield* eventually(
          "the closed bridge session to leave presence",
          Effect.map(
            verdict(console1, bridge.path, "allow"),
            (reply) => reply.type === "error" ? Option.some(reply) : Option.none()
          ),
          "10 seconds",
          "20 millis"
        )
      )
      assert.strictEqual(gone.kind, "not_found")
      assert.include(gone.message, "is not online")
    }))

  it.scopedLive("with no console online the ack says so", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const bridge = yield* register(url, "alice", "laptop", "agent", "bridge")
      assert.strictEqual(expectType(yield* relay(bridge), "ack").detail, "relayed to 0 console sessions")
    }))

  it.scopedLive("bad input: empty or long request_id, empty tool_name, an oversize description, a bad behavior", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ maxBodyBytes: 1024 })
      const bridge = yield* register(url, "alice", "laptop", "agent", "bridge")
      const e1 = errorOf(yield* relay(bridge, ""))
      assert.strictEqual(e1.kind, "malformed_frame")
      assert.include(e1.message, "`request_id` must be 1 to 64 characters")
      assert.strictEqual(errorOf(yield* relay(bridge, "r".repeat(65))).kind, "malformed_frame")
      const e2 = errorOf(
        yield* bridge.request({ type: "permission_request", request_id: "r", tool_name: "", description: "" })
      )
      assert.include(e2.message, "`tool_name` must not be empty")
      const e3 = errorOf(
        yield* bridge.request({
          type: "permission_request",
          request_id: "r",
          tool_name: "Bash",
          description: "x".repeat(2000)
        })
      )
      assert.strictEqual(e3.kind, "too_large")
      assert.strictEqual(errorOf(yield* verdict(bridge, bridge.path, "allow", "")).kind, "malformed_frame")
      // the session survived every refusal above
      expectType(yield* relay(bridge), "ack")
    }))

  it.scopedLive("requests are rate limited like whispers", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ ratePerSecond: 0.001, rateBurst: 2 })
      const bridge = yield* register(url, "alice", "laptop", "agent", "bridge")
      expectType(yield* relay(bridge, "a"), "ack")
      expectType(yield* relay(bridge, "b"), "ack")
      assert.strictEqual(errorOf(yield* relay(bridge, "c")).kind, "rate_limited")
    }))
})

describeWith("Permission relay across nodes (D-42)", ["postgres", "nats"], () => {
  it.scopedLive("a request reaches a console on another node and the verdict comes back", () =>
    Effect.gen(function*() {
      const url = yield* scratchDatabase
      const prefix = subjectPrefix()
      const node = (n: number) =>
        Effect.gen(function*() {
          const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
          const running = yield* startServer({
            nodeId: `node-${n}`,
            heartbeatInterval: Duration.millis(400),
            store: PgStore.layer({ url }),
            broker: NatsBroker.layer({ url: NATS, prefix, reconnectWait: "100 millis" })
          }).pipe(Scope.extend(scope))
          return running.url
        })
      const one = yield* node(1)
      const two = yield* node(2)
      const bridge = yield* register(one, "alice", "laptop", "agent", "bridge")
      const web = yield* connect(two, { identity: bridge.identity, handle: "web", client: "console" })
      // node one learns of the console on node two through its attach (bounded poll)
      yield* eventually(
        "node one to see the console on node two",
        Effect.map(relay(bridge, "probe"), (reply) =>
          expectType(reply, "ack").detail === "relayed to 1 console session" ? Option.some(true) : Option.none()),
        "10 seconds"
      )
      const first = expectType(yield* web.next(), "permission_request")
      assert.strictEqual(first.tool_name, "Bash")
      expectType(yield* verdict(web, bridge.path, "deny", first.request_id), "ack")
      assert.deepStrictEqual(yield* bridge.next(), {
        type: "permission_verdict",
        from: web.path,
        request_id: first.request_id,
        behavior: "deny"
      })
    }))
})
