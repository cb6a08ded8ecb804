// The permission relay to remote approvers (SPEC §4.5.3) over real processes: a real `conclave serve`,
// a real `conclave bridge` driven by the MCP SDK client, and a console session of the same user.
import { Connection, type LocalConfig } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { assertBuilt, callOk, eventuallyUp, register, setConfig, startBridge, startServer } from "./E2E.js"

const REQUEST = {
  method: "notifications/claude/channel/permission_request",
  params: { request_id: "qwert", tool_name: "Bash", description: "run `rm -rf build`", input_preview: "rm -rf build" }
}

describe("bridge e2e: permission requests answered from a console", () => {
  assertBuilt()

  it.live(
    "a request reaches the console; its verdict is sent to Claude Code exactly once, with a notice",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const dir = yield* tempDir()
        const identity = yield* register(dir, server.url, "aaron")
        const web = yield* Connection.connect({ url: server.url, handle: "web", client: "console", identity }).pipe(
          Effect.orDie
        )
        const bridge = yield* startBridge({ configDir: dir, args: ["--as", "agent"] })
        yield* eventuallyUp(bridge)

        yield* Effect.promise(() => bridge.client.notification(REQUEST))
        const relayed = Option.getOrThrow(
          yield* web.unsolicited.pipe(
            Stream.filter((f) => f.type === "permission_request"),
            Stream.take(1),
            Stream.runHead
          )
        )
        assert.deepStrictEqual(relayed, {
          type: "permission_request",
          from: { user: "aaron", machine: "workstation", session: "agent" },
          request_id: "qwert",
          tool_name: "Bash",
          description: "run `rm -rf build`"
        })
        // the same-session notice is still injected
        assert.isTrue(
          bridge.channel().some((n) => n.meta["kind"] === "permission_request" && n.meta["request_id"] === "qwert")
        )

        const answer = (behavior: "allow" | "deny") =>
          web.request({
            type: "permission_verdict",
            target: relayed.type === "permission_request" ? relayed.from : { user: "", machine: "", session: "" },
            request_id: "qwert",
            behavior
          }).pipe(Effect.orDie)
        yield* answer("allow")
        const verdicts = () =>
          bridge.notifications.filter((n) => n.method === "notifications/claude/channel/permission")
        yield* Kit.eventually("the verdict notification", () => verdicts().length === 1, "10 seconds")
        assert.deepStrictEqual(verdicts()[0]!.params, { request_id: "qwert", behavior: "allow" })
        yield* Kit.eventually(
          "the notice naming who answered",
          () =>
            bridge.channel().some((n) =>
              n.meta["kind"] === "permission_verdict" && n.content.includes("aaron/workstation/web")
            ),
          "10 seconds"
        )
        // a second verdict for the same request is dropped
        yield* answer("deny")
        // a later request round-trips, so the dropped verdicts above have been handled by now
        yield* Effect.promise(() =>
          bridge.client.notification({ ...REQUEST, params: { ...REQUEST.params, request_id: "yuiop" } })
        )
        yield* web.unsolicited.pipe(
          Stream.filter((f) => f.type === "permission_request"),
          Stream.take(1),
          Stream.runDrain
        )
        yield* web.request({
          type: "permission_verdict",
          target: { user: "aaron", machine: "workstation", session: "agent" },
          request_id: "yuiop",
          behavior: "deny"
        }).pipe(Effect.orDie)
        yield* Kit.eventually("the second request's verdict", () => verdicts().length === 2, "10 seconds")
        assert.deepStrictEqual(verdicts().map((n) => n.params), [
          { request_id: "qwert", behavior: "allow" },
          { request_id: "yuiop", behavior: "deny" }
        ])
        // answered in the session first: the console's verdict that follows is dropped
        const relayAndAnswer = (requestId: string, behavior: "allow" | "deny") =>
          Effect.gen(function*() {
            yield* Effect.promise(() =>
              bridge.client.notification({ ...REQUEST, params: { ...REQUEST.params, request_id: requestId } })
            )
            yield* web.unsolicited.pipe(
              Stream.filter((f) => f.type === "permission_request"),
              Stream.take(1),
              Stream.runDrain
            )
            return (then: Effect.Effect<void>) =>
              Effect.zipRight(
                then,
                web.request({
                  type: "permission_verdict",
                  target: { user: "aaron", machine: "workstation", session: "agent" },
                  request_id: requestId,
                  behavior
                }).pipe(Effect.orDie, Effect.asVoid)
              )
          })
        const first = yield* relayAndAnswer("asdfg", "allow")
        yield* first(Effect.asVoid(callOk(bridge, "submit_permission", { request_id: "asdfg", decision: "deny" })))
        const second = yield* relayAndAnswer("zxcvb", "allow")
        yield* second(Effect.void)
        yield* Kit.eventually("the fourth request's verdict", () => verdicts().length === 4, "10 seconds")
        assert.deepStrictEqual(verdicts().slice(2).map((n) => n.params), [
          { request_id: "asdfg", behavior: "deny" },
          { request_id: "zxcvb", behavior: "allow" }
        ])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("permission_relay = false keeps the request in the session", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dir = yield* tempDir()
      const identity = yield* register(dir, server.url, "aaron")
      yield* setConfig(dir, (c): LocalConfig.LocalConfig => ({ ...c, permission_relay: false }))
      const web = yield* Connection.connect({ url: server.url, handle: "web", client: "console", identity }).pipe(
        Effect.orDie
      )
      const bridge = yield* startBridge({ configDir: dir, args: ["--as", "agent"] })
      yield* eventuallyUp(bridge)
      yield* Effect.promise(() => bridge.client.notification(REQUEST))
      yield* Kit.eventually("the local notice", () =>
        bridge.channel().some((n) => n.meta["kind"] === "permission_request"), "10 seconds")
      // a request of the bridge to the server after the notice, then a whisper: a relayed request
      // would have reached the console before the whisper
      yield* callOk(bridge, "list_channels")
      yield* web.request({
        type: "whisper",
        target: web.path,
        payload: { kind: "plain", text: "marker" }
      }).pipe(Effect.orDie)
      const first = Option.getOrThrow(
        yield* web.unsolicited.pipe(
          Stream.filter((f) =>
            f.type === "permission_request" || f.type === "whisper"
          ),
          Stream.take(1),
          Stream.runHead
        )
      )
      assert.strictEqual(first.type, "whisper", "nothing was relayed")
    }).pipe(Effect.scoped), 60_000)
})
