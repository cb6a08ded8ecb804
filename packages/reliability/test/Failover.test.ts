/**
 * Failover of a dead node's sessions (issue 17, Done-when): three spawned `conclave serve` nodes on
 * one PostgreSQL database and a `nats-server` of the suite's own; N sessions on node 3 subscribed to
 * a channel a publisher on node 1 posts to at a steady pace. Node 3 is SIGKILLed; each of its clients,
 * on seeing its socket close, reconnects to one of the surviving nodes (alternately, as a load
 * balancer would spread them), rejoins and fills its gap by seq (`read_since` from the last seq it
 * saw, paging until `more: false`). Measured: the time from the SIGKILL until every one of the N is
 * re-established and gap-filled; checked: each client then holds every acknowledged seq up to the end
 * of its fill, and the channel's seq is gap-free.
 *
 * N = 1 000 with `CONCLAVE_RELIABILITY=full` (target: within 10 s), 50 in the default run. Without
 * PostgreSQL, `nats-server` or the built CLI the suite says so and is skipped (under `CI=true`, it
 * fails).
 */
import type { Frames } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import * as Os from "node:os"
import * as Backends from "../src/Backends.js"
import * as Processes from "../src/Processes.js"
import * as Profile from "../src/Profile.js"
import * as Report from "../src/Report.js"

/** How many sessions the killed node holds: 50, 1 000 in full mode, or `CONCLAVE_FAILOVER_SESSIONS`. */
const SESSIONS = Number(process.env["CONCLAVE_FAILOVER_SESSIONS"] ?? Profile.count(50, 1000))
/** Sessions per user (one identity, many session handles, as one agent machine runs many). */
const PER_USER = 50
const TARGET_MS = 10_000
/** The publisher's pace: steady, so the fan-out to N sessions does not saturate the 2-core box. */
const POST_EVERY_MS = 50

const missing = Backends.missing()

interface Follower {
  readonly identity: Kit.Identity
  readonly handle: string
  /** Every seq of `load` this client holds, live or read. */
  readonly seen: Set<number>
  lastSeen: number
  session: Kit.Session
}

/** Every message of `load` after `since` (paging), added to `follower.seen`; the last seq read. */
const fill = (s: Kit.Session, follower: Follower, since: number) =>
  Effect.gen(function*() {
    let after = since
    for (;;) {
      const page = Kit.expectType(
        yield* s.request({ type: "read_since", channel: "load", since_seq: after, since_ms: null }, "30 seconds"),
        "history"
      )
      for (const m of page.messages) {
        follower.seen.add(m.seq)
        after = m.seq
      }
      if (!page.more) return after
    }
  })

const follow = (follower: Follower) => (frame: Frames.ServerFrame) => {
  if (frame.type === "channel_msg") {
    follower.seen.add(frame.seq)
    if (frame.seq > follower.lastSeen) follower.lastSeen = frame.seq
  }
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const suite = missing.length === 0 ? describe : describe.skip
if (missing.length > 0) {
  if (process.env["CI"] === "true") {
    describe("failover", () => {
      it("its backends are present (required under CI=true)", () => {
        assert.fail(missing.join("; "))
      })
    })
  } else {
    console.log(`skipped: ${missing.join("; ")}`)
  }
}

suite("failover", () => {
  it.live(
    `SIGKILL of the node holding ${SESSIONS} sessions: every one re-established on the others and gap-filled by seq`,
    () =>
      Effect.scoped(Effect.gen(function*() {
        const { nodes } = yield* Backends.cluster({
          nodes: 3,
          extraArgs: ["--admin", "root", "--max-pending-per-ip", "0", "--register-limit", "0"]
        })
        const [n1, n2, n3] = [nodes[0]!, nodes[1]!, nodes[2]!]
        const root = yield* Kit.register(n1.url, "root")
        Kit.expectType(
          yield* root.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" })),
          "ack"
        )
        const pub = yield* Kit.register(n1.url, "pub")
        Kit.expectType(yield* pub.request({ type: "join", channel: "load", token: null }), "joined")

        // N sessions on n3: SESSIONS / PER_USER users, each with PER_USER session handles.
        const users = Array.from({ length: Math.ceil(SESSIONS / PER_USER) }, () => Kit.newIdentity())
        const connectFollower = (i: number) =>
          Effect.gen(function*() {
            const u = Math.floor(i / PER_USER)
            const handle = `s${i % PER_USER}`
            const session = yield* Kit.connect(n3.url, {
              identity: users[u]!,
              handle,
              ...(i % PER_USER === 0 ? { register: { username: `u${u}`, machine: "m" } } : {})
            })
            const follower: Follower = { identity: users[u]!, handle, seen: new Set(), lastSeen: 0, session }
            session.onFrame = follow(follower)
            Kit.expectType(yield* session.request({ type: "join", channel: "load", token: null }), "joined")
            return follower
          })
        const indices = Array.from({ length: SESSIONS }, (_, i) => i)
        // each user's first session registers it; then the users' further sessions in parallel
        const first = yield* Effect.forEach(indices.filter((i) => i % PER_USER === 0), connectFollower)
        const rest = yield* Effect.forEach(indices.filter((i) => i % PER_USER !== 0), connectFollower, {
          concurrency: 16
        })
        const followers = [...first, ...rest]

        const acked: Array<number> = []
        const stop = yield* Deferred.make<void>()
        const publisher = yield* Effect.gen(function*() {
          for (let i = 0; !(yield* Deferred.isDone(stop)); i++) {
            const reply = yield* pub.request(
              { type: "channel_msg", channel: "load", payload: Kit.plain(`m${i}`), reply_to: null },
              "30 seconds"
            )
            if (reply.type === "ack" && reply.seq !== null) acked.push(reply.seq)
            yield* Effect.sleep(`${POST_EVERY_MS} millis`)
          }
        }).pipe(Effect.fork)
        yield* Kit.eventually(
          `every session on n3 to receive the load live`,
          Effect.sync(() => followers.every((f) => f.lastSeen > 0) ? Option.some(true) : Option.none()),
          "60 seconds",
          "100 millis"
        )

        const liveBeforeKill = followers.map((f) => ({ lastSeen: f.lastSeen, size: f.seen.size }))
        yield* Processes.kill9(n3)
        const killedAt = performance.now()
        const survivors = [n1, n2]
        const progress = { closed: 0, connected: 0, joined: 0, filled: 0 }
        const nodeErrors = () =>
          survivors.map((n) =>
            n.stderr().split("\n").filter((l) => /level=(ERROR|WARN)/.test(l)).slice(0, 3).join("\n")
          ).join("\n")
        const doneAfter = yield* Effect.forEach(followers, (f, i) =>
          Effect.gen(function*() {
            yield* f.session.closed
            progress.closed++
            // the last seq this client saw on the dead node (live frames on the new session move
            // `lastSeen` on before the read, so it is taken now)
            const since = f.lastSeen
            // reconnect as behind a load balancer: the surviving nodes in turn, retrying a refusal
            const back = yield* Kit.connect(survivors[i % survivors.length]!.url, {
              identity: f.identity,
              handle: f.handle
            }).pipe(Effect.retry({ times: 20 }))
            progress.connected++
            const connectedMs = performance.now() - killedAt
            f.session = back
            back.onFrame = follow(f)
            Kit.expectType(
              yield* back.request({ type: "join", channel: "load", token: null }, "30 seconds"),
              "joined"
            )
            progress.joined++
            const joinedMs = performance.now() - killedAt
            const upto = yield* fill(back, f, since)
            progress.filled++
            return { ms: performance.now() - killedAt, connectedMs, joinedMs, upto }
          }), { concurrency: "unbounded" }).pipe(
            Effect.timeoutFail({
              duration: "90 seconds",
              onTimeout: () => new Error(`not every session was re-established and gap-filled within 90 s`)
            }),
            Effect.mapError((e) =>
              new Error(
                `${e.message} (after ${Math.round(performance.now() - killedAt)} ms: ${
                  JSON.stringify(progress)
                } of ${SESSIONS}); the surviving nodes logged:\n${nodeErrors()}`
              )
            )
          )
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(publisher)

        const ackedSet = new Set(acked)
        const maxAcked = Math.max(...acked)
        for (let seq = 1; seq <= maxAcked; seq++) assert.isTrue(ackedSet.has(seq), `seq ${seq} was never acknowledged`)
        followers.forEach((f, i) => {
          const { upto } = doneAfter[i]!
          for (const seq of acked) {
            if (seq <= upto) {
              assert.isTrue(
                f.seen.has(seq),
                `session ${i}: acknowledged seq ${seq} missing (before the kill it had ${
                  liveBeforeKill[i]!.size
                } up to ${liveBeforeKill[i]!.lastSeen}; filled up to ${upto}; first seen ${
                  [...f.seen].sort((a, b) => a - b).slice(0, 5).join(",")
                })`
              )
            }
          }
        })
        const times = doneAfter.map((d) => d.ms)
        const all = Math.round(Math.max(...times))
        const p50 = Math.round(percentile(times, 50))
        const p99 = Math.round(percentile(times, 99))
        const lastConnected = Math.round(Math.max(...doneAfter.map((d) => d.connectedMs)))
        const lastJoined = Math.round(Math.max(...doneAfter.map((d) => d.joinedMs)))
        const load = Os.loadavg().map((l) => l.toFixed(1)).join(" / ")
        const checks = [
          Report.atMost("all re-established and gap-filled", all, TARGET_MS, " ms"),
          Report.holds("every acknowledged seq present in every client", true)
        ]
        yield* Report.record("failover", "Failover: a dead node's sessions re-established elsewhere", [{
          test:
            `SIGKILL of one of three nodes (PostgreSQL + NATS) holding ${SESSIONS} sessions (${users.length} users × ${PER_USER}) subscribed to a channel posted to every ${POST_EVERY_MS} ms from node 1; each client reconnects to node 1 or 2 in turn, rejoins and reads its gap by seq`,
          figure:
            `all ${SESSIONS} re-established and gap-filled ${all} ms after the SIGKILL (p50 ${p50} ms, p99 ${p99} ms; the last handshake done at ${lastConnected} ms, the last join at ${lastJoined} ms); ${acked.length} acknowledged, 0 missing in any client, seq gap-free; load average ${load} (1/5/15 min, ${Os.cpus().length} cores)`,
          target: `≤ ${TARGET_MS / 1000} s for 1 000 sessions (issue 17)`,
          checks
        }], [
          "All on the one 2-core box: three nodes, PostgreSQL, the suite's own nats-server and the clients. `CONCLAVE_RELIABILITY=full` runs the 1 000; the default run 50.",
          "The gap reads are shared: a survivor answers the `read_since` requests for a channel that arrive while a read of it is under way with one store read (issue 17; before, each session's read waited for the previous one's two PostgreSQL round trips and a turn of the event loop)."
        ])
        // The 10 s target is for the 1 000 of full mode; the default run's 50 prove the failover
        // itself (every one back, 0 missing) within the 90 s bound, however loaded the box.
        if (SESSIONS >= 1000) assert.isAtMost(all, TARGET_MS, `re-established and gap-filled after ${all} ms`)
      })),
    600_000
  )
})
