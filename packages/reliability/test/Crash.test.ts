/**
 * SIGKILL of the spawned `conclave serve` binary under publish load (BENCH-AND-RELIABILITY §6.3,
 * DECISIONS D-5): every acknowledged message survives every kill, no duplicates, integrity_check
 * is ok after every kill, and the restart is quick.
 */
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Path from "node:path"
import * as Integrity from "../src/Integrity.js"
import * as Prng from "../src/Prng.js"
import * as Processes from "../src/Processes.js"
import * as Profile from "../src/Profile.js"
import * as Report from "../src/Report.js"

const rows: Array<Report.Row> = []

describe("crash", () => {
  it.live("SIGKILL under publish load loses no acknowledged message", () =>
    Effect.scoped(Effect.gen(function*() {
      if (!Processes.conclaveBuilt()) {
        return yield* Effect.dieMessage("conclave is not built: run `npx tsc -b packages/cli` before this suite")
      }
      const dir = yield* Kit.tempDir("conclave-crash-")
      const kills = Profile.count(2, 100)
      const publishers = 6
      const rng = Prng.make(Profile.seed ^ 0x4004)
      const ids = Array.from({ length: publishers }, () => Kit.newIdentity())
      const reader = Kit.newIdentity()
      const acked = new Map<number, string>()
      const integrity: Array<string> = []
      const ready: Array<number> = []
      let registered = false
      let attempted = 0
      let refused = 0

      for (let k = 0; k <= kills; k++) {
        const verdict = yield* Effect.scoped(Effect.gen(function*() {
          const server = yield* Processes.spawnServer(dir)
          ready.push(server.readyMs)
          const connect = (identity: Kit.Identity, name: string) =>
            Kit.connect(server.url, {
              identity,
              handle: `c${k}`,
              ...(registered ? {} : { register: { username: name, machine: "m" } })
            })
          const readerSession = yield* connect(reader, "reader")
          if (!registered) {
            yield* readerSession.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" }))
          }
          const sessions = yield* Effect.forEach(ids, (id, i) => connect(id, `pub${i}`))
          registered = true
          Kit.expectType(yield* readerSession.request({ type: "join", channel: "load", token: null }), "joined")
          // Everything acknowledged so far (across every earlier kill) must be in the store, once.
          const seen = new Map<number, string>()
          let since = 0
          for (;;) {
            const page = Kit.expectType(
              yield* readerSession.request({ type: "read_since", channel: "load", since_seq: since }),
              "history"
            )
            for (const m of page.messages) {
              if (seen.has(m.seq)) return { error: `duplicate seq ${m.seq}` }
              seen.set(m.seq, m.payload.kind === "plain" ? m.payload.text : "")
              since = m.seq
            }
            if (!page.more) break
          }
          const texts = new Set(seen.values())
          if (texts.size !== seen.size) return { error: "a message was stored twice" }
          for (const [seq, text] of acked) {
            if (seen.get(seq) !== text) return { error: `acknowledged seq ${seq} lost after kill ${k}` }
          }
          if (k === kills) return { error: undefined }
          yield* Effect.forEach(sessions, (s) =>
            Effect.map(s.request({ type: "join", channel: "load", token: null }), (r) =>
              Kit.expectType(r, "joined")))
          // Publish flat out from every session, then SIGKILL at a seeded random moment.
          const fibers = yield* Effect.forEach(sessions, (s, w) =>
            Effect.gen(function*() {
              for (let i = 0;; i++) {
                const text = `k${k}-p${w}-${i}`
                attempted++
                const reply = yield* s.request({ type: "channel_msg", channel: "load", payload: Kit.plain(text) })
                  .pipe(
                    Effect.either
                  )
                if (reply._tag === "Left") {
                  return
                }
                if (reply.right.type === "ack" && reply.right.seq !== null) {
                  acked.set(reply.right.seq, text)
                } else refused++
              }
            }).pipe(Effect.fork))
          yield* Effect.sleep(`${rng.int(100, 600)} millis`)
          yield* Processes.kill9(server)
          yield* Effect.forEach(fibers, Fiber.join, { discard: true })
          yield* Effect.promise(() =>
            new Promise((r) => server.proc.once("exit", r))
          ).pipe(
            Effect.timeout("5 seconds"),
            Effect.ignore,
            Effect.when(() => server.proc.exitCode === null && server.proc.signalCode === null)
          )
          integrity.push(yield* Integrity.integrityCheck(Path.join(dir, "conclave.db")))
          return { error: undefined }
        }))
        if (verdict.error !== undefined) {
          rows.push({
            test: "SIGKILL under publish load",
            figure: `FAILED after ${k} kills: ${verdict.error}`,
            target: "0 acknowledged lost",
            checks: [Report.holds("every acknowledged message present once after each kill", false)]
          })
          yield* Report.record("crash", "Crash: SIGKILL under load", rows)
          assert.fail(verdict.error)
        }
      }
      const bad = integrity.filter((r) => r !== "ok")
      const maxReady = Math.max(...ready)
      const sortedReady = [...ready].sort((a, b) => a - b)
      const medianReady = sortedReady[Math.floor(sortedReady.length / 2)]!
      rows.push({
        test: `SIGKILL of \`conclave serve\` under publish load (${publishers} publishers flat out)`,
        figure: `${kills} kills, ${
          kills + 1 - ready.length
        } failed restarts, ${acked.size} acknowledged (of ${attempted} attempted), 0 acknowledged messages lost, 0 duplicates, integrity_check ok ${
          integrity.length - bad.length
        }/${integrity.length}; restart-to-listening median ${medianReady} ms, max ${maxReady} ms (process spawn included)`,
        target: "100 kills, 0 acknowledged lost, 0 duplicates, integrity ok, restart ≤ 1 s",
        checks: [
          Report.atLeast("kills", kills, 100),
          Report.equals("failed restarts", kills + 1 - ready.length, 0),
          Report.equals("integrity_check failures", bad.length, 0),
          Report.equals("refused posts", refused, 0),
          Report.atMost("restart-to-listening max", maxReady, 1000, " ms")
        ]
      })
      yield* Report.record("crash", "Crash: SIGKILL under load", rows, [
        "Restart time is measured from `spawn` to the \"listening\" log line, so it includes Node's start-up on a busy 2-core box."
      ])
      assert.deepStrictEqual(bad, [])
      assert.isAbove(acked.size, 0)
      assert.strictEqual(refused, 0)
    })), 1_800_000)
})
