// `conclave tail` as a real process against a real server (S-168, S-169, D-31, GAPS #42):
// ready line, live and replayed lines, control characters, whispers, JSON lines, resume without
// gaps or duplicates after a server restart, fatal refusals, Ctrl-C.
import { Connection, Identity } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { fileTempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assertBuilt, spawnCli, startServer } from "./support/Harness.js"
import { ko, ok } from "./support/InProcess.js"

assertBuilt()

const root = fileTempDir("conclave-tail-test-")
const dir = (name: string) => {
  const d = Path.join(root, name)
  Fs.mkdirSync(d, { recursive: true })
  return d
}

/** One server for the file, with an on-disk store so that it can be restarted on the same port. */
const setup = Effect.gen(function*() {
  const filename = Path.join(root, "server.db")
  const server = yield* startServer({ filename })
  const aaron = dir("aaron")
  yield* ok(["register", "--server", server.url, "--username", "aaron", "--machine", "workstation"], {
    configDir: aaron
  })
  yield* ok(["channel", "create", "--server", server.url, "watch"], { configDir: aaron })
  return { server, filename, aaron }
})

let shared: Effect.Effect.Success<typeof setup> | undefined
const env = Effect.suspend(() =>
  shared === undefined ? setup.pipe(Effect.tap((s) => Effect.sync(() => void (shared = s)))) : Effect.succeed(shared)
)

const send = (url: string, configDir: string, text: string, channel = "watch") =>
  ok(["send", "--server", url, "--channel", channel, text], { configDir })

describe("conclave tail", { timeout: 60_000 }, () => {
  it.scopedLive("issue 18: --before SEQ prints the page before #SEQ, oldest first, says how to go on, and exits", () =>
    Effect.gen(function*() {
      // pages of 3 rows, so that a short channel has more than one page
      const server = yield* startServer({ config: { historyPageCap: 3 } })
      yield* Effect.addFinalizer(() => server.stop)
      const me = dir("scroll-back")
      yield* ok(["register", "--server", server.url, "--username", "aaron", "--machine", "workstation"], {
        configDir: me
      })
      yield* ok(["channel", "create", "--server", server.url, "back"], { configDir: me })
      const seqs: Array<number> = []
      for (let i = 1; i <= 5; i++) {
        const r = yield* ok(["send", "--server", server.url, "--channel", "back", "--json", `b${i}`], { configDir: me })
        seqs.push((JSON.parse(r.stdout) as { seq: number }).seq)
      }
      const back = (before: number, ...flags: ReadonlyArray<string>) =>
        ok(["tail", "--server", server.url, "--channel", "back", "--before", String(before), ...flags], {
          configDir: me
        })

      const newest = yield* back(Number.MAX_SAFE_INTEGER, "--json")
      const rows = newest.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
      assert.deepStrictEqual(rows.map((r) => r["text"] ?? r["type"]), ["b3", "b4", "b5", "more"])
      assert.deepStrictEqual(rows[0], {
        type: "message",
        channel: "back",
        from: `aaron/workstation/cli-${process.pid}`,
        text: "b3",
        seq: seqs[2],
        origin: "human",
        reply_to: null,
        ts_ms: rows[0]!["ts_ms"],
        history: true
      })
      assert.deepStrictEqual(rows[3], { type: "more", channel: "back", before_seq: seqs[2] })
      assert.include(newest.stderr, `older messages remain: conclave tail --channel back --before ${seqs[2]}`)

      const older = yield* back(seqs[2]!, "--details")
      assert.deepStrictEqual(older.stdout.trim().split("\n"), [
        `[back] #${seqs[0]} aaron/workstation/cli-${process.pid} (human) [history]: b1`,
        `[back] #${seqs[1]} aaron/workstation/cli-${process.pid} (human) [history]: b2`
      ])
      assert.notInclude(older.stderr, "older messages remain")

      const none = yield* back(seqs[0]!)
      assert.strictEqual(none.stdout, "")
      assert.include(none.stderr, `#back: no retained messages before #${seqs[0]}`)
      // a channel this user may not read is refused like any history read
      yield* ok(["channel", "create", "--server", server.url, "hidden", "--visibility", "private"], { configDir: me })
      const other = dir("scroll-back-other")
      yield* ok(["register", "--server", server.url, "--username", "bob", "--machine", "box"], { configDir: other })
      const refused = yield* ko(["tail", "--server", server.url, "--channel", "hidden", "--before", "5"], {
        configDir: other
      })
      assert.strictEqual(refused.code, 1)
      assert.include(refused.stderr, "join rejected")
    }))

  it.scopedLive("S-168: ready line, then live channel lines with the sender's path", () =>
    Effect.gen(function*() {
      const { aaron, server } = yield* env
      const tail = yield* spawnCli(["tail", "--server", server.url, "--channel", "watch"], { configDir: aaron })
      const ready = yield* tail.nextLine("the ready line")
      assert.strictEqual(ready, `tailing #watch as aaron/workstation/cli-${tail.child.pid} — Ctrl-C to stop`)
      yield* send(server.url, aaron, "hello from the plain CLI")
      const line = yield* tail.nextLine("the live line")
      assert.strictEqual(line, `[watch] aaron/workstation/cli-${process.pid}: hello from the plain CLI`)

      // D-31: control characters never reach the terminal; a newline cannot forge another message line.
      yield* send(server.url, aaron, "evil\x1b[31mred\x07\r\n[watch] mallory/box/s: forged")
      const safe = yield* tail.nextLine("the sanitized line")
      assert.notInclude(safe, "\x1b")
      assert.notInclude(safe, "\x07")
      assert.notInclude(safe, "\r")
      assert.strictEqual(safe, `[watch] aaron/workstation/cli-${process.pid}: evil[31mred`)
      assert.strictEqual(yield* tail.nextLine("the continuation line"), "    [watch] mallory/box/s: forged")

      // A whisper addressed to the tail session.
      const identity = yield* Identity.load(aaron).pipe(Effect.orDie)
      const conn = yield* Connection.connect({ url: server.url, handle: "whisperer", client: "cli", identity }).pipe(
        Effect.orDie
      )
      yield* conn.request({
        type: "whisper",
        target: { user: "aaron", machine: "workstation", session: `cli-${tail.child.pid}` },
        payload: { kind: "plain", text: "psst" }
      }).pipe(Effect.orDie)
      assert.strictEqual(yield* tail.nextLine("the whisper"), "[whisper] aaron/workstation/whisperer: psst")

      // Ctrl-C exits 0.
      tail.child.kill("SIGINT")
      assert.strictEqual(yield* tail.exit, 0)
    }))

  it.scopedLive("S-169: --since replays the backlog, then streams; --json prints one object per line", () =>
    Effect.gen(function*() {
      const { aaron, server } = yield* env
      yield* send(server.url, aaron, "posted before the tail existed")
      const tail = yield* spawnCli(["tail", "--server", server.url, "--channel", "watch", "--since", "1h", "--json"], {
        configDir: aaron
      })
      const ready = JSON.parse(yield* tail.nextLine("the ready line"))
      assert.deepStrictEqual(ready, {
        type: "tailing",
        channel: "watch",
        path: `aaron/workstation/cli-${tail.child.pid}`
      })
      let backlog = JSON.parse(yield* tail.nextLine("the backlog"))
      while (backlog.text !== "posted before the tail existed") backlog = JSON.parse(yield* tail.nextLine("backlog"))
      assert.strictEqual(backlog.type, "message")
      assert.strictEqual(backlog.history, true)
      assert.strictEqual(backlog.origin, "human")
      assert.isNumber(backlog.seq)
      yield* send(server.url, aaron, "and now live")
      const live = JSON.parse(yield* tail.nextLine("the live line"))
      assert.strictEqual(live.text, "and now live")
      assert.strictEqual(live.history, false)
      assert.isAbove(live.seq, backlog.seq)
    }))

  it.scopedLive(
    "issue 23, item 8: --details marks history, origin and replies; --utc and --timestamps (local) prefix the time",
    () =>
      Effect.gen(function*() {
        const { aaron, server } = yield* env
        yield* ok(["channel", "create", "--server", server.url, "stamps"], { configDir: aaron })
        yield* send(server.url, aaron, "a question", "stamps")
        const identity = yield* Identity.load(aaron).pipe(Effect.orDie)
        const agent = yield* Connection.connect({ url: server.url, handle: "agent", client: "bridge", identity }).pipe(
          Effect.orDie
        )
        yield* agent.request({ type: "join", channel: "stamps", token: null }).pipe(Effect.orDie)
        const history = yield* agent.request({
          type: "read_since",
          channel: "stamps",
          since_seq: 0,
          since_ms: null,
          before_seq: null
        })
          .pipe(Effect.orDie)
        const question = history.type === "history" ? history.messages[0]! : assert.fail(JSON.stringify(history))
        yield* agent.request({
          type: "channel_msg",
          channel: "stamps",
          payload: { kind: "plain", text: "an answer" },
          reply_to: question.seq
        }).pipe(Effect.orDie)

        const utc = yield* spawnCli(
          ["tail", "--server", server.url, "--channel", "stamps", "--since", "1h", "--details", "--utc"],
          { configDir: aaron }
        )
        yield* utc.nextLine("the ready line")
        const stamp = "(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ)"
        const first = yield* utc.nextLine("the question, replayed")
        const matched = new RegExp(
          `^${stamp} \\[stamps\\] #${question.seq} aaron/workstation/cli-\\d+ \\(human\\) \\[history\\]: a question$`
        )
          .exec(first)
        assert.isNotNull(matched, first)
        // The time of a replayed line is when it was posted.
        assert.strictEqual(Date.parse(matched![1]!), Math.floor(question.ts_ms / 1000) * 1000)
        assert.match(
          yield* utc.nextLine("the answer, replayed"),
          new RegExp(
            `^${stamp} \\[stamps\\] #\\d+ aaron/workstation/agent \\(agent\\) ↪ #${question.seq} \\[history\\]: an answer$`
          )
        )
        yield* send(server.url, aaron, "live now", "stamps")
        assert.match(
          yield* utc.nextLine("the live line"),
          new RegExp(`^${stamp} \\[stamps\\] #\\d+ aaron/workstation/cli-\\d+ \\(human\\): live now$`)
        )

        // Local time, here UTC+05:30 (no daylight saving), and SPEC's line after it.
        const local = yield* spawnCli(
          ["tail", "--server", server.url, "--channel", "stamps", "--since", "1h", "--timestamps"],
          { configDir: aaron, env: { TZ: "Asia/Kolkata" } }
        )
        yield* local.nextLine("the ready line")
        const shifted = new Date(Math.floor(question.ts_ms / 1000) * 1000 + 5.5 * 3600_000).toISOString()
        const expected = `${shifted.slice(0, 10)} ${shifted.slice(11, 19)}`
        const sender = /aaron\/workstation\/cli-\d+/.exec(first)![0]
        assert.strictEqual(
          yield* local.nextLine("the question, local time"),
          `${expected} [stamps] ${sender}: a question`
        )
      })
  )

  it.scopedLive("the line flags refuse --json (bad input), before connecting", () =>
    Effect.gen(function*() {
      const { aaron } = yield* env
      for (const flag of ["--timestamps", "--utc", "--details"]) {
        const r = yield* ko(["tail", "--server", "ws://127.0.0.1:9", "--channel", "x", "--json", flag], {
          configDir: aaron
        })
        assert.include(r.stderr, `\`${flag}\` shapes text lines`)
        assert.include(r.stderr, "--json")
        assert.notInclude(r.stderr, "connect")
      }
    }))

  it.scopedLive("a rejected join exits 1 at once; a revoked key ends the stream with exit 1", () =>
    Effect.gen(function*() {
      const { aaron, server } = yield* env
      const nope = yield* spawnCli(["tail", "--server", server.url, "--channel", "nowhere"], { configDir: aaron })
      assert.strictEqual(yield* nope.exit, 1)
      assert.include(nope.stderr(), "join rejected: not found: channel `nowhere` not found")

      const box = dir("box")
      const key = (yield* ok(["key"], { configDir: box })).stdout.trim()
      yield* ok(["machine", "add", "--server", server.url, "--name", "box", "--pubkey", key], { configDir: aaron })
      // the new machine accepts the offer with its own key (issue 22)
      yield* ok(["server", "add", server.url, "--username", "aaron", "--machine", "box"], { configDir: box })
      const tail = yield* spawnCli(["tail", "--server", server.url, "--channel", "watch", "--as", "watcher"], {
        configDir: box
      })
      assert.include(yield* tail.nextLine("the ready line"), "as aaron/box/watcher")
      yield* ok(["machine", "remove", "--server", server.url, "box"], { configDir: aaron })
      assert.strictEqual(yield* tail.exit, 1)
      assert.include(tail.stderr(), "server terminated the stream: unauthorized: machine key revoked")
    }))

  it.scopedLive("a history page over the client's frame limit is skipped once, with a note, never asked for again (issue 22)", () =>
    Effect.gen(function*() {
      const ceiling = 16 * 1024 * 1024
      const server = yield* Effect.acquireRelease(
        startServer({ config: { maxFrameBytes: ceiling, maxBodyBytes: ceiling } }),
        (s) => s.stop
      )
      const user = dir("big")
      yield* ok(["register", "--server", server.url, "--username", "big", "--machine", "m"], { configDir: user })
      yield* ok(["channel", "create", "--server", server.url, "big"], { configDir: user })
      // accepted as an inbound frame just under 16 MiB; its history row (with its path, seq and time)
      // is just over the client's own 16 MiB limit
      yield* send(server.url, user, "a".repeat(ceiling - 150), "big")
      const tail = yield* spawnCli(["tail", "--server", server.url, "--channel", "big", "--since", "1h"], {
        configDir: user
      })
      // the server has just taken a 16 MiB post: a loaded host may take a while to get here
      yield* tail.nextLine("the ready line", 30_000)
      // --since is a time: the message is first looked for by seq (one more reconnect), then skipped
      const skipped = "message #1 of #big is larger than this client accepts (16777216 bytes) and was skipped"
      yield* Kit.eventually(
        () => `the skip note; stderr: ${tail.stderr().slice(0, 2000)}`,
        () => tail.stderr().includes(skipped) || tail.child.exitCode !== null,
        "30 seconds"
      )
      yield* send(server.url, user, "after the big one", "big")
      assert.include(yield* tail.nextLine("the message after it", 20_000), "after the big one")
      assert.strictEqual(tail.stderr().split(skipped).length - 1, 1)
      assert.include(tail.stderr(), "a message of #big posted since")
      assert.isAtMost(tail.stderr().split("reconnected; resuming").length - 1, 2)
      tail.child.kill("SIGINT")
      assert.strictEqual(yield* tail.exit, 0)
    }))

  it.scopedLive("resumes after a server restart without gaps or duplicates (seq watermark)", () =>
    Effect.gen(function*() {
      const setupNow = yield* env
      const { aaron, filename } = setupNow
      const url = setupNow.server.url
      const tail = yield* spawnCli(["tail", "--server", url, "--channel", "watch"], { configDir: aaron })
      yield* tail.nextLine("the ready line")
      yield* send(url, aaron, "m1 before the restart")
      assert.include(yield* tail.nextLine("m1"), "m1 before the restart")

      yield* setupNow.server.stop
      const again = yield* startServer({ filename, port: setupNow.server.port })
      shared = { ...setupNow, server: again }
      yield* send(url, aaron, "m2 while the tail was away")
      const m2 = yield* tail.nextLine("m2 replayed after the reconnect", 20_000)
      assert.include(m2, "m2 while the tail was away")
      yield* send(url, aaron, "m3 live again")
      assert.include(yield* tail.nextLine("m3"), "m3 live again")
      assert.include(tail.stderr(), "connection lost")
      assert.include(tail.stderr(), "reconnected; resuming #watch")
      tail.child.kill("SIGINT")
      assert.strictEqual(yield* tail.exit, 0)
    }))

  it.scopedLive("a tail that has seen no message yet still replays what was posted while it reconnected", () =>
    Effect.gen(function*() {
      const setupNow = yield* env
      const { aaron, filename } = setupNow
      const url = setupNow.server.url
      yield* ok(["channel", "create", "--server", url, "quiet"], { configDir: aaron })
      const tail = yield* spawnCli(["tail", "--server", url, "--channel", "quiet"], { configDir: aaron })
      yield* tail.nextLine("the ready line")
      yield* setupNow.server.stop
      const again = yield* startServer({ filename, port: setupNow.server.port })
      shared = { ...setupNow, server: again }
      yield* send(url, aaron, "posted during the gap", "quiet")
      assert.include(yield* tail.nextLine("the gap message", 20_000), "posted during the gap")
      const extra = yield* tail.nextLine("nothing else", 1_000).pipe(
        Effect.option,
        Effect.catchAllDefect(() => Effect.succeed(Option.none()))
      )
      assert.isTrue(Option.isNone(extra), "no duplicate line")
    }))
})
