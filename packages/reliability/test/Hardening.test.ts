/**
 * Issue 22, attacked as an outsider would: each defect's attack, replayed against the fixed server,
 * with the figure it now gives. Every test here failed on 626ea68.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Embedded from "../src/Embedded.js"
import * as HealthProbe from "../src/HealthProbe.js"
import * as Profile from "../src/Profile.js"
import * as RawWs from "../src/RawWs.js"
import * as Report from "../src/Report.js"
import * as Wire from "../src/Wire.js"

const rows: Array<Report.Row> = []
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("hardening (issue 22)", () => {
  it.live(
    "per-address limits: silent sockets and failed handshakes from one address do not lock its enrolled users out",
    () =>
      Effect.scoped(Effect.gen(function*() {
        // the shipped defaults: 32 pending per address, 30 costly failures per minute
        const server = yield* Embedded.start({ maxPendingPerIp: 32, registerLimitPerMinute: 30 })
        const probe = yield* HealthProbe.start(server.url)
        const alice = Wire.newIdentity()
        yield* Effect.scoped(
          Wire.connect(server.url, { identity: alice, handle: "s0", register: { username: "alice", machine: "m" } })
        )
        const login = (i: number) =>
          Effect.scoped(Wire.connect(server.url, { identity: alice, handle: `s${i}` })).pipe(
            Effect.as(true),
            Effect.orElseSucceed(() => false)
          )

        // 1. 32 silent upgraded sockets, renewed as they go, while alice logs in 12 times.
        const silent = yield* Effect.forEach(range(32), () => RawWs.upgrade(server.port), { concurrency: 8 })
        let renewed = 0
        const logins = 12
        let silentOk = 0
        for (let i = 0; i < logins; i++) {
          if (yield* login(i + 1)) silentOk++
          // renew what the server displaced, so the cap stays full of strangers
          for (let j = 0; j < silent.length; j++) {
            if (silent[j]!.socket.destroyed || silent[j]!.socket.readyState !== "open") {
              silent[j] = yield* RawWs.upgrade(server.port)
              renewed++
            }
          }
        }
        for (const s of silent) s.socket.destroy()

        // 2. Failed pre-auth attempts from the same address: forged signatures (counted once checked)
        //    and register frames never followed by auth (counted for nothing).
        const failures = Profile.count(300, 1000)
        let refused = 0
        let accepted = 0
        yield* Effect.forEach(range(failures), (i) =>
          Effect.scoped(Effect.gen(function*() {
            const client = yield* Wire.dial(server.url)
            if (i % 2 === 0) {
              const reply = yield* Wire.handshake(client, {
                identity: Wire.newIdentity(),
                handle: "x",
                register: { username: `forger${i}`, machine: "m" },
                signHost: "elsewhere:1"
              })
              if (reply.type === "error") refused++
              else accepted++
            } else {
              client.send({ type: "hello", protocol_version: 1, session: "x", host: null, client: "bridge" })
              yield* client.next()
              client.send({ type: "register", username: `ghost${i}`, machine: "m", pubkey: Wire.newIdentity().pubkey })
              refused++
            }
          })).pipe(Effect.orElseSucceed(() => {
            refused++
          })), { concurrency: 8, discard: true })
        let afterOk = 0
        for (let i = 0; i < logins; i++) if (yield* login(100 + i)) afterOk++
        // a new registration from the address is refused while it is over the cap (the trade-off)
        const newcomer = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Wire.dial(server.url)
          return yield* Wire.handshake(client, {
            identity: Wire.newIdentity(),
            handle: "n",
            register: { username: "newcomer", machine: "m" }
          })
        }))
        const result = yield* probe.stop
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test:
            "per-address limits (defaults: 32 pending, 30 costly failures/min): 32 silent sockets renewed as they go; then failed pre-auth attempts, all from the enrolled user's address",
          figure:
            `with 32 silent sockets (${renewed} renewed): ${silentOk}/${logins} logins by the enrolled user; after ${failures} failed attempts (${
              failures - Math.floor(failures / 2)
            } forged signatures, ${
              Math.floor(failures / 2)
            } unsigned register frames; ${refused} refused or unanswered, ${accepted} accepted): ${afterOk}/${logins} logins, a new registration from the address answered \`${
              newcomer.type === "error" ? newcomer.error.kind : newcomer.type
            }\`; ${crashes} crashes; ${HealthProbe.describe(result)}`,
          target: "enrolled users of the address log in 100 %; 0 forgeries accepted",
          checks: [
            Report.equals("logins with silent sockets", silentOk, logins),
            Report.equals("logins after failures", afterOk, logins),
            Report.equals("forgeries accepted", accepted, 0),
            Report.equals("crashes", crashes, 0)
          ]
        })
        assert.strictEqual(silentOk, logins)
        assert.strictEqual(afterOk, logins)
        assert.strictEqual(accepted, 0)
        assert.strictEqual(newcomer.type === "error" ? newcomer.error.kind : newcomer.type, "rate_limited")
        assert.strictEqual(crashes, 0)
      })),
    300_000
  )

  afterAll(() => Effect.runPromise(Report.record("hardening", "Hardening: issue 22 replayed", rows)))
})
