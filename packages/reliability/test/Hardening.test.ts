/**
 * Issue 22, attacked as an outsider would: each defect's attack, replayed against the fixed server,
 * with the figure it now gives. Every test here failed on 626ea68.
 */
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Os from "node:os"
import * as HealthProbe from "../src/HealthProbe.js"
import * as Processes from "../src/Processes.js"
import * as Profile from "../src/Profile.js"
import * as RawWs from "../src/RawWs.js"
import * as Report from "../src/Report.js"

const rows: Array<Report.Row> = []
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("hardening (issue 22)", () => {
  it.live(
    "per-address limits: silent sockets and failed handshakes from one address do not lock its enrolled users out",
    () =>
      Effect.scoped(Effect.gen(function*() {
        // the shipped defaults: 32 pending per address, 30 costly failures per minute
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 32, registerLimitPerMinute: 30 })
        const probe = yield* HealthProbe.start(server.url)
        const alice = Kit.newIdentity()
        yield* Effect.scoped(
          Kit.connect(server.url, { identity: alice, handle: "s0", register: { username: "alice", machine: "m" } })
        )
        const login = (i: number) =>
          Effect.scoped(Kit.connect(server.url, { identity: alice, handle: `s${i}` })).pipe(
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
        // the issue's figure in both profiles: 1 000 failed pre-auth attempts from the one address
        const failures = 1000
        let refused = 0
        let accepted = 0
        yield* Effect.forEach(range(failures), (i) =>
          Effect.scoped(Effect.gen(function*() {
            const client = yield* Kit.dial(server.url)
            if (i % 2 === 0) {
              const reply = yield* Kit.handshake(client, {
                identity: Kit.newIdentity(),
                handle: "x",
                register: { username: `forger${i}`, machine: "m" },
                signHost: "elsewhere:1"
              })
              if (reply.type === "error") refused++
              else accepted++
            } else {
              yield* client.send({ type: "hello", protocol_version: 1, session: "x", host: null, client: "bridge" })
              yield* client.next()
              yield* client.send({
                type: "register",
                username: `ghost${i}`,
                machine: "m",
                pubkey: Kit.newIdentity().pubkey
              })
              refused++
            }
          })).pipe(Effect.orElseSucceed(() => {
            refused++
          })), { concurrency: 8, discard: true })
        let afterOk = 0
        for (let i = 0; i < logins; i++) if (yield* login(100 + i)) afterOk++
        // a new registration from the address is refused while it is over the cap (the trade-off)
        const newcomer = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Kit.dial(server.url)
          return yield* Kit.handshake(client, {
            identity: Kit.newIdentity(),
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

  it.live(
    "machine_add without the key: Bob offers Carol's key; Carol registers and authenticates as herself",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const bob = yield* Kit.register(server.url, "bob")
        const carol = Kit.newIdentity()
        // 1. Bob enrolls Carol's public key as his machine.
        const offered = yield* bob.request({
          type: "admin",
          op: { kind: "machine_add", name: "stolen", pubkey: carol.pubkey }
        })
        // 2. Carol's plain auth is not Bob's machine; her registration of her own name goes through.
        const plain = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Kit.dial(server.url)
          return yield* Kit.handshake(client, { identity: carol, handle: "c0" })
        }))
        const registered = yield* Effect.scoped(
          Kit.connect(server.url, { identity: carol, handle: "c1", register: { username: "carol", machine: "m" } })
        ).pipe(Effect.map((s) => s.path.user), Effect.orElseSucceed(() => "refused"))
        const after = yield* Effect.scoped(Kit.connect(server.url, { identity: carol, handle: "c2" })).pipe(
          Effect.map((s) => `${s.path.user}/${s.path.machine}`),
          Effect.orElseSucceed(() => "refused")
        )
        // 3. A bound key cannot be offered again; Bob's offer lapsed.
        const again = yield* bob.request({
          type: "admin",
          op: { kind: "machine_add", name: "stolen2", pubkey: carol.pubkey }
        })
        const list = yield* bob.request({ type: "list_machines" })
        const bobMachines = list.type === "machine_list" ? list.machines.map((m) => m.name) : []
        // 4. The legitimate flow: Bob offers his own laptop's key; the laptop accepts by registering.
        const laptop = Kit.newIdentity()
        yield* bob.request({ type: "admin", op: { kind: "machine_add", name: "laptop", pubkey: laptop.pubkey } })
        const accepted = yield* Effect.scoped(
          Kit.connect(server.url, { identity: laptop, handle: "l", register: { username: "bob", machine: "laptop" } })
        ).pipe(Effect.map((s) => `${s.path.user}/${s.path.machine}`), Effect.orElseSucceed(() => "refused"))
        const crashes = yield* HealthProbe.crashes(server.port)
        const plainText = plain.type === "error" ? `${plain.error.kind}` : plain.type
        rows.push({
          test: "machine_add of someone else's key (Bob offers Carol's public key, then Carol connects)",
          figure:
            `offer answered \`${offered.type}\`; Carol's plain auth \`${plainText}\`; her register → \`${registered}\`, then auth → \`${after}\`; a second offer of her bound key \`${
              again.type === "error" ? again.error.kind : again.type
            }\`; Bob's machines [${
              bobMachines.join(", ")
            }]; Bob's own laptop accepted its offer by registering → \`${accepted}\`; ${crashes} crashes`,
          target: "the key's holder is never another user's machine without signing for it; one key, one user",
          checks: [
            Report.holds("Carol's plain auth refused", plain.type === "error"),
            Report.holds("Carol registers as herself", registered === "carol"),
            Report.holds("Carol authenticates as herself", after === "carol/m"),
            Report.holds("a bound key cannot be offered", again.type === "error"),
            Report.holds("the legitimate offer is accepted", accepted === "bob/laptop"),
            Report.equals("crashes", crashes, 0)
          ]
        })
        assert.strictEqual(offered.type, "ack")
        assert.strictEqual(plain.type, "error")
        assert.strictEqual(registered, "carol")
        assert.strictEqual(after, "carol/m")
        assert.strictEqual(again.type, "error")
        assert.deepStrictEqual(bobMachines, ["box"])
        assert.strictEqual(accepted, "bob/laptop")
      })),
    120_000
  )

  it.live(
    "names that look alike: invisible, case, width, Cyrillic look-alikes beside `alice` and `ops`",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const alice = yield* Kit.register(server.url, "alice")
        yield* Effect.scoped(Kit.register(server.url, "jos\u00e9"))
        yield* alice.request({ type: "admin", op: { kind: "create_channel", name: "ops", visibility: "public" } })
        const tricks = (base: string, cyrillic: string) => [
          `${base}\uFE0F`,
          `${base}\u034F`,
          `${base}\u3164`,
          `${base}\u115F`,
          `${base}\u2800`,
          `${base}\u17B4`,
          cyrillic,
          base.toUpperCase(),
          base[0]!.toUpperCase() + base.slice(1)
        ]
        const fullwidth = (s: string) => [...s].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join("")
        // NFC and NFD forms: `josé` exists, its decomposed spelling is tried
        const userTricks = [...tricks("alice", "аlice"), fullwidth("alice"), "alicе", "jose\u0301"]
        const channelTricks = [...tricks("ops", "оps"), fullwidth("ops")]
        let usersAccepted = 0
        let channelsAccepted = 0
        const accepted: Array<string> = []
        for (const name of userTricks) {
          const r = yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Kit.dial(server.url)
            return yield* Kit.handshake(client, {
              identity: Kit.newIdentity(),
              handle: "s",
              register: { username: name, machine: "m" }
            })
          }))
          if (r.type === "established") {
            usersAccepted++
            accepted.push(JSON.stringify(name))
          }
        }
        for (const name of channelTricks) {
          const r = yield* alice.request({ type: "admin", op: { kind: "create_channel", name, visibility: "public" } })
          if (r.type !== "error") {
            channelsAccepted++
            accepted.push(JSON.stringify(name))
          }
        }
        // machine names of one user
        const box = yield* alice.request({
          type: "admin",
          op: { kind: "machine_add", name: "BOX", pubkey: Kit.newIdentity().pubkey }
        })
        // distinct names still pass
        const bob = yield* Effect.scoped(Kit.register(server.url, "alicia")).pipe(
          Effect.as(true),
          Effect.orElseSucceed(() => false)
        )
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test:
            "look-alike names beside `alice` (user) and `ops` (channel): U+FE0F, U+034F, U+3164, U+115F, U+2800, U+17B4, NFD, Cyrillic, fullwidth, upper case",
          figure:
            `${userTricks.length} user names tried, ${usersAccepted} accepted; ${channelTricks.length} channel names tried, ${channelsAccepted} accepted${
              accepted.length > 0 ? ` (${accepted.join(", ")})` : ""
            }; machine \`BOX\` beside \`box\` answered \`${
              box.type === "error" ? box.error.kind : box.type
            }\`; a distinct name (\`alicia\`) ${bob ? "registered" : "REFUSED"}; ${crashes} crashes`,
          target: "0 look-alikes accepted; distinct names still accepted",
          checks: [
            Report.equals("look-alike users accepted", usersAccepted, 0),
            Report.equals("look-alike channels accepted", channelsAccepted, 0),
            Report.holds("look-alike machine refused", box.type === "error"),
            Report.holds("distinct name accepted", bob),
            Report.equals("crashes", crashes, 0)
          ]
        })
        assert.deepStrictEqual(accepted, [])
        assert.strictEqual(box.type, "error")
        assert.isTrue(bob)
      })),
    120_000
  )

  it.live(
    "after user_remove, a new key registering the same user/machine does not inherit the old rows",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({
          ...Kit.noLimits,
          maxPendingPerIp: 0,
          admins: [{ user: "root", pin: null }]
        })
        const root = yield* Kit.register(server.url, "root")
        yield* root.request({ type: "admin", op: { kind: "create_channel", name: "lobby", visibility: "public" } })
        yield* root.request({ type: "join", channel: "lobby", token: null })
        const alice = yield* Kit.register(server.url, "alice", "box", "s1")
        yield* alice.request({ type: "join", channel: "lobby", token: null })
        yield* alice.request({
          type: "channel_msg",
          channel: "lobby",
          payload: Kit.plain("the first alice wrote this"),
          reply_to: null
        })
        yield* root.request({ type: "admin", op: { kind: "user_remove", username: "alice" } })
        // a new key takes the same user/machine/session
        const impostor = yield* Kit.register(server.url, "alice", "box", "s1")
        yield* impostor.request({ type: "join", channel: "lobby", token: null })
        const page = yield* impostor.request({ type: "read_since", channel: "lobby", since_seq: 0, since_ms: null })
        const authors = page.type === "history"
          ? page.messages.map((m) => `${m.from.user}/${m.from.machine}/${m.from.session}`)
          : []
        const inherited = authors.filter((a) => a === "alice/box/s1").length
        rows.push({
          test: "user_remove, then a new key registers the same `user/machine` and reads the old rows",
          figure: `${authors.length} old row(s), authors now [${
            authors.join(", ")
          }]; ${inherited} attributed to the new owner`,
          target: "0 old rows attributed to the new owner",
          checks: [Report.equals("rows inherited", inherited, 0), Report.atLeast("old rows kept", authors.length, 1)]
        })
        assert.deepStrictEqual(authors, ["alice (removed)/box/s1"])
      })),
    60_000
  )

  it.live(
    "history amplification: a client that asks for huge pages and stops reading costs neither /health nor memory",
    () =>
      Effect.scoped(Effect.gen(function*() {
        // the real binary, so the probe measures the server alone (not this process's own work)
        const server = yield* Processes.spawnServer(yield* Kit.tempDir(), {
          extraArgs: ["--max-pending-per-ip", "0", "--register-limit", "0"]
        })
        const writer = yield* Kit.register(server.url, "writer")
        yield* writer.request({ type: "admin", op: { kind: "create_channel", name: "big", visibility: "public" } })
        yield* writer.request({ type: "join", channel: "big", token: null })
        // 64 KiB of control characters: about 393 KB per row once JSON-escaped
        const body = "\u0001".repeat(64 * 1024)
        const posts = Profile.count(120, 500)
        const acked = yield* Effect.forEach(range(posts), () =>
          writer.request(
            { type: "channel_msg", channel: "big", payload: Kit.plain(body), reply_to: null },
            "60 seconds"
          ), { concurrency: 4 })
        const refusedPost = acked.find((r) => r.type !== "ack")
        assert.isUndefined(refusedPost, JSON.stringify(refusedPost))
        const attacker = yield* Kit.register(server.url, "reader")
        yield* attacker.request({ type: "join", channel: "big", token: null })
        const rss0 = Processes.rssOf(server.pid)
        // the attack: stop reading, then ask for the whole history again and again
        attacker.ws.pause()
        const requests = 64
        for (let i = 0; i < requests; i++) {
          yield* attacker.send({ type: "read_since", id: `a${i}`, channel: "big", since_seq: 0, since_ms: null })
        }
        // /health every 20 ms for the attack's duration, RSS sampled alongside
        const seconds = Profile.count(4, 10)
        const latencies: Array<number> = []
        let rssMax = rss0
        let failures = 0
        const t0 = performance.now()
        while (performance.now() - t0 < seconds * 1000) {
          const start = performance.now()
          const r = yield* Effect.tryPromise(() =>
            fetch(`http://127.0.0.1:${server.port}/health`, { signal: AbortSignal.timeout(5000) }).then((res) =>
              res.status
            )
          ).pipe(Effect.orElseSucceed(() => 0))
          latencies.push(performance.now() - start)
          if (r !== 200) {
            failures++
          }
          rssMax = Math.max(rssMax, Processes.rssOf(server.pid))
          yield* Effect.sleep("20 millis")
        }
        const sorted = [...latencies].sort((a, b) => a - b)
        const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? Infinity
        const growth = (rssMax - rss0) / 1048576
        // the reader that stopped reading is cut off as a slow consumer once its backlog passes the budget
        attacker.ws.resume()
        const closed = yield* attacker.closed.pipe(
          Effect.map((c) => `${c.code} "${c.reason}"`),
          Effect.orElseSucceed(() => "still open")
        )
        // history is still readable by others
        const other = yield* Kit.register(server.url, "other")
        yield* other.request({ type: "join", channel: "big", token: null })
        const page = yield* other.request(
          { type: "read_since", channel: "big", since_seq: 0, since_ms: null },
          "30 seconds"
        )
        const readable = page.type === "history" && page.messages.length > 0 && page.more
        rows.push({
          test:
            `history amplification: ${posts} posts of 64 KiB control characters; a reader stops reading and sends ${requests} \`read_since\` from seq 0`,
          figure: `/health p99 ${p99.toFixed(1)} ms, max ${
            (sorted[sorted.length - 1] ?? 0).toFixed(1)
          } ms over ${latencies.length} probes (${failures} not 200; load average ${
            Os.loadavg()[0]!.toFixed(1)
          } on ${Os.cpus().length} cores); the real binary's RSS growth ${
            growth.toFixed(1)
          } MiB; the reader: ${closed}; another reader's first page: ${
            page.type === "history" ? `${page.messages.length} rows, more ${page.more}` : page.type
          }`,
          target: "/health p99 ≤ 100 ms, RSS growth ≤ 64 MiB, history still readable",
          checks: [
            Report.atMost("/health p99", Math.round(p99 * 10) / 10, 100, " ms"),
            Report.atMost("RSS growth", Math.round(growth * 10) / 10, 64, " MiB"),
            Report.equals("/health failures", failures, 0),
            Report.holds("history readable", readable)
          ]
        })
        // The target is 100 ms on a quiet host; on a shared box the bound scales with the load per core
        // (the figure in the row is the measured one, its check the unscaled target).
        const loadPerCore = Os.loadavg()[0]! / Os.cpus().length
        assert.isAtMost(p99, 100 * Math.max(1, loadPerCore), `/health p99 (load ${loadPerCore.toFixed(1)} per core)`)
        assert.isAtMost(growth, 64)
        assert.strictEqual(failures, 0)
        assert.isTrue(readable, rows[rows.length - 1]!.figure)
      })),
    600_000
  )

  it.live(
    "a relayed handshake is refused: a relay that forwards a victim's handshake with its own Host gets nothing",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const victim = Kit.newIdentity()
        yield* Effect.scoped(
          Kit.connect(server.url, { identity: victim, handle: "v0", register: { username: "victim", machine: "m" } })
        )
        const relay = "relay.example:8443"
        // the victim signed for the relay (the server it dialed); the relay forwards it with its own Host
        const relayed = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Kit.dial(server.url, { headers: { host: relay } })
          return yield* Kit.handshake(client, { identity: victim, handle: "v1", host: relay })
        }))
        // the same without a hello.host, signed for the relay
        const hostless = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Kit.dial(server.url, { headers: { host: relay } })
          return yield* Kit.handshake(client, { identity: victim, handle: "v2", host: null, signHost: relay })
        }))
        // the victim's own handshake, signed for the server it dialed, still goes through
        const direct = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Kit.dial(server.url)
          return yield* Kit.handshake(client, { identity: victim, handle: "v3" })
        }))
        const crashes = yield* HealthProbe.crashes(server.port)
        const kind = (f: { readonly type: string }) => f.type === "error" && "error" in f ? `error` : f.type
        rows.push({
          test: "relayed handshake: the victim's handshake signed for a relay, forwarded with the relay's Host header",
          figure: `with hello.host = the relay: ${kind(relayed)}; hostless, signed for the relay: ${
            kind(hostless)
          }; the victim's own handshake: ${direct.type}; ${crashes} crashes`,
          target: "a relayed handshake is refused; a direct one is established",
          checks: [
            Report.holds("relayed refused", relayed.type === "error"),
            Report.holds("hostless relayed refused", hostless.type === "error"),
            Report.holds("direct established", direct.type === "established"),
            Report.equals("crashes", crashes, 0)
          ]
        })
        assert.strictEqual(relayed.type, "error", JSON.stringify(relayed))
        assert.strictEqual(hostless.type, "error", JSON.stringify(hostless))
        assert.strictEqual(direct.type, "established")
        assert.strictEqual(crashes, 0)
      })),
    120_000
  )

  it.live(
    "deeply nested JSON before auth: 8 connections sending 400 000 nested `[` cost /health nothing",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const probe = yield* HealthProbe.start(server.url)
        const seconds = Profile.count(3, 10)
        const payload = Buffer.from("[".repeat(400_000))
        const frame = RawWs.frame({ opcode: 1, payload })
        let sent = 0
        let closed = 0
        const t0 = performance.now()
        yield* Effect.forEach(range(8), () =>
          Effect.gen(function*() {
            while (performance.now() - t0 < seconds * 1000) {
              const r = yield* RawWs.upgrade(server.port).pipe(Effect.either)
              if (r._tag === "Left") continue
              const conn = r.right
              conn.socket.write(frame)
              sent++
              // refused before parsing: the server closes at once
              const done = yield* Effect.promise(() => conn.ended).pipe(Effect.timeout("5 seconds"), Effect.option)
              if (done._tag === "Some") closed++
              conn.socket.destroy()
            }
          }), { concurrency: "unbounded", discard: true })
        const result = yield* probe.stop
        // /health while the flood runs again, timed
        const latencies: Array<number> = []
        const t1 = performance.now()
        const flood = Effect.forEach(range(8), () =>
          Effect.gen(function*() {
            while (performance.now() - t1 < 2000) {
              const r = yield* RawWs.upgrade(server.port).pipe(Effect.either)
              if (r._tag === "Left") continue
              r.right.socket.write(frame)
              yield* Effect.promise(() => r.right.ended).pipe(Effect.timeout("5 seconds"), Effect.ignore)
              r.right.socket.destroy()
            }
          }), { concurrency: "unbounded", discard: true })
        const health = Effect.gen(function*() {
          while (performance.now() - t1 < 2000) {
            const start = performance.now()
            yield* Effect.tryPromise(() => fetch(`http://127.0.0.1:${server.port}/health`)).pipe(Effect.ignore)
            latencies.push(performance.now() - start)
            yield* Effect.sleep("20 millis")
          }
        })
        yield* Effect.all([flood, health], { concurrency: "unbounded", discard: true })
        const sorted = [...latencies].sort((a, b) => a - b)
        const median = sorted[Math.floor(sorted.length / 2)] ?? Infinity
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test:
            `deeply nested JSON before auth: 8 connections sending an 800 KB frame of 400 000 \`[\` for ${seconds} s`,
          figure: `${sent} frames sent, ${closed} closed by the server within 5 s; /health median ${
            median.toFixed(1)
          } ms over ${latencies.length} probes (load average ${
            Os.loadavg()[0]!.toFixed(1)
          } on ${Os.cpus().length} cores); ${crashes} crashes; ${HealthProbe.describe(result)}`,
          target: "refused before parsing (closed), /health median ≤ 100 ms, probe 0 loss, 0 crashes",
          checks: [
            Report.equals("not closed", sent - closed, 0),
            Report.atMost("/health median", Math.round(median * 10) / 10, 100, " ms"),
            Report.equals("probe lost", result.lost, 0),
            Report.equals("crashes", crashes, 0)
          ]
        })
        assert.isAbove(sent, 0)
        assert.strictEqual(closed, sent)
        const loadPerCore = Os.loadavg()[0]! / Os.cpus().length
        assert.isAtMost(
          median,
          100 * Math.max(1, loadPerCore),
          `/health median (load ${loadPerCore.toFixed(1)} per core)`
        )
        assert.strictEqual(result.lost, 0, HealthProbe.describe(result))
        assert.strictEqual(crashes, 0)
      })),
    300_000
  )

  afterAll(() => Effect.runPromise(Report.record("hardening", "Hardening: issue 22 replayed", rows)))
})
