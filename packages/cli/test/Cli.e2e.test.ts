// The real binary end to end: `conclave serve --ephemeral --bind 127.0.0.1:0` as a child process,
// and every other verb as a child process against it (S-166, S-168, S-171, D-32).
import { fileTempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import { assertBuilt, ko, ok, type Running, spawnCli, spawnServe, subdir } from "./support/Harness.js"

assertBuilt()

const root = fileTempDir("conclave-e2e-")
const dir = (name: string) => subdir(root, name)
const serve = spawnServe

describe("conclave end to end (spawned server and verbs)", { timeout: 90_000 }, () => {
  it.scopedLive("S-166 + S-168 + S-171: control verbs, send and tail, status before and after the server stops", () =>
    Effect.gen(function*() {
      const { server, url: U } = yield* serve(["--admin", "aaron"])
      const D = dir("aaron")
      const L = dir("laptop")
      yield* ok(["key"], { configDir: D })
      const reg = yield* ok(["register", "--server", U, "--username", "aaron", "--machine", "workstation"], {
        configDir: D
      })
      assert.match(reg.stdout.trim(), /^✓ registered aaron\/workstation\/cli-\d+$/)
      const K = (yield* ok(["key"], { configDir: L })).stdout.trim()
      yield* ok(["machine", "add", "--server", U, "--name", "laptop", "--pubkey", K], { configDir: D })
      const list = yield* ok(["machine", "list", "--server", U], { configDir: D })
      assert.include(list.stdout, "workstation")
      assert.include(list.stdout, "laptop")
      yield* ok(["machine", "remove", "--server", U, "laptop"], { configDir: D })
      yield* ok(["perm", "set", "converse", "--server", U, "--channel", "ops"], { configDir: D })
      assert.include((yield* ok(["perm", "show"], { configDir: D })).stdout, "converse")
      yield* ok(["channel", "create", "--server", U, "ops"], { configDir: D })
      assert.strictEqual((yield* ok(["join", "--server", U, "ops"], { configDir: D })).stdout.trim(), "✓ joined ops")
      yield* ok(["channel", "create", "--server", U, "watch"], { configDir: D })

      const tail: Running = yield* spawnCli(["tail", "--server", U, "--channel", "watch"], { configDir: D })
      assert.include(yield* tail.nextLine("the tail's ready line"), "watch")
      const sent = yield* ok(["send", "--server", U, "--channel", "watch", "hello from the plain CLI"], {
        configDir: D
      })
      assert.strictEqual(sent.stdout.trim(), "✓ sent to watch")
      const line = yield* tail.nextLine("the streamed line")
      assert.include(line, "hello from the plain CLI")
      assert.include(line, "aaron/workstation")
      tail.child.kill("SIGINT")
      assert.strictEqual(yield* tail.exit, 0)

      const up = yield* ok(["status"], { configDir: D })
      assert.include(up.stdout, U)
      assert.include(up.stdout, "aaron/workstation")
      assert.include(up.stdout, "reachable")
      assert.include(up.stdout, "ops")
      assert.include(up.stdout, "converse")

      server.child.kill("SIGTERM")
      assert.strictEqual(yield* server.exit, 0)
      const down = yield* ko(["status"], { configDir: D })
      assert.strictEqual(down.code, 1)
      assert.include(down.stdout, "unreachable")
      assert.include(down.stderr, "1 server(s) unreachable")
    }))

  it.live("D-32: `conclave demo` prints a transcript of two sessions exchanging messages and a whisper", () =>
    Effect.gen(function*() {
      const r = yield* ok(["demo"])
      assert.include(r.stdout, "✓ registered alice/")
      assert.include(r.stdout, "✓ registered bob/")
      assert.match(r.stdout, /^\[lobby\] alice\/laptop\/demo: .+\(seen by bob\)$/m)
      assert.match(r.stdout, /^\[lobby\] bob\/desktop\/demo: .+\(seen by alice\)$/m)
      assert.match(r.stdout, /^\[whisper\] alice\/laptop\/demo: .+\(seen by bob only\)$/m)
      assert.include(r.stdout, "demo finished")
      const tmp = /config dir (\S+)\/alice\)/.exec(r.stdout)
      assert.isNotNull(tmp)
      assert.isFalse(Fs.existsSync(tmp![1]!), "the throwaway config dir is removed")
    }))
})
