// Real processes: a history page over the bridge's frame limit during a catch-up is skipped once, with
// a notice naming the message, and never asked for again (issue 22).
import { LocalConfig } from "@conclave/client"
import { Limits } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { assertBuilt, callOk, connectAs, post, register, setConfig, startBridge, startServer } from "./E2E.js"

const converse = (dir: string) => setConfig(dir, (c) => LocalConfig.setDefault(c, "converse"))

const CEILING = Limits.MAX_FRAME_BYTES_CEILING
// the poster's handle makes the delivered frame (which names its sender) longer than the posted one
const HANDLE = "a-rather-long-session-handle-for-the-poster-of-a-big-one"

describe("bridge e2e: a history page over the frame limit", () => {
  assertBuilt()

  const scenario = (earlier: boolean) =>
    Effect.gen(function*() {
      const server = yield* startServer({
        args: ["--max-frame-bytes", String(CEILING), "--max-body-bytes", String(CEILING)]
      })
      const url = server.url
      const seq = earlier ? 2 : 1
      const dirA = yield* tempDir()
      const dirH = yield* tempDir()
      const aaron = yield* register(dirA, url, "aaron")
      const human = yield* register(dirH, url, "dana", "desk")
      yield* converse(dirA)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* connectAs(url, aaron, "setup")
        yield* c.request({ type: "admin", op: { kind: "create_channel", name: "big", visibility: "public" } }).pipe(
          Effect.orDie
        )
      }))
      const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice"] })
      yield* callOk(a, "join_channel", { channel: "big" })

      // The posted frame is just under the server's 16 MiB cap; the delivery and the history row (which
      // carry the sender's path, the seq and the origin) are just over the bridge's own 16 MiB limit.
      const posted = JSON.stringify({
        type: "channel_msg",
        id: "",
        channel: "big",
        payload: { kind: "plain", text: "" },
        reply_to: null
      }).length
      const big = "b".repeat(CEILING - posted - 16)
      yield* Effect.scoped(Effect.gen(function*() {
        const h = yield* connectAs(url, human, HANDLE)
        yield* h.request({ type: "join", channel: "big", token: null }).pipe(Effect.orDie)
        if (earlier) {
          yield* post(h, "big", "before the big one")
          yield* Kit.eventually("the first message", () =>
            a.channel().some((n) => n.content.includes("before the big one")), "10 seconds")
        }
        const ack = yield* post(h, "big", big)
        assert.strictEqual(ack.type === "ack" ? ack.seq : null, seq)
      }))

      const isSkip = (n: { readonly meta: Record<string, string> }) =>
        n.meta["reason"] === "too_large" && n.meta["seq"] !== undefined
      yield* Kit.eventually("the notice of the skipped message", () =>
        a.channel().some(isSkip), "45 seconds")
      const skip = a.channel().find(isSkip)!
      assert.strictEqual(skip.meta["seq"], String(seq))
      assert.strictEqual(skip.meta["channel"], "big")
      assert.include(skip.content, `message #${seq} of #big is larger than this client accepts (16777216 bytes)`)
      // without an earlier message the catch-up started at a time: it first says it looks for it
      const looking = a.channel().filter((n) =>
        n.meta["reason"] === "too_large" && n.meta["seq"] === undefined
      )
      assert.strictEqual(looking.length, earlier ? 0 : 1)
      assert.include(skip.content, "no client can read it over the protocol")

      // live again, and the message after it arrives once
      yield* Effect.scoped(Effect.gen(function*() {
        const h = yield* connectAs(url, human, "h2")
        yield* h.request({ type: "join", channel: "big", token: null }).pipe(Effect.orDie)
        yield* post(h, "big", "after the big one")
      }))
      yield* Kit.eventually("the message after it", () =>
        a.channel().some((n) => n.content.includes("after the big one")), "10 seconds")
      assert.strictEqual(
        a.channel().filter((n) =>
          n.content.includes("after the big one")
        ).length,
        1
      )
      assert.strictEqual(a.channel().filter(isSkip).length, 1)
      // one drop for the delivery, one for each catch-up page that failed; none after the skip
      const ups = a.stderr().split("\n").filter((l) => l.includes("link up")).length
      assert.isAtMost(ups, earlier ? 3 : 4, a.stderr().slice(-2000))
      // never a handle rename or an --as advisory: these drops are not flaps
      assert.isFalse(a.channel().some((n) => n.content.includes("--as") || n.content.includes("renamed")))
      const list = yield* callOk(a, "catch_up", { channel: "big" })
      assert.notInclude(list, "connection")
    }).pipe(Effect.scoped)

  it.live(
    "the catch-up skips past the message it cannot read, says which, and never asks for that page again",
    () => scenario(true),
    90_000
  )

  it.live(
    "with no seq seen yet, it looks for the message by seq (one more reconnect), then skips it",
    () => scenario(false),
    120_000
  )
})
