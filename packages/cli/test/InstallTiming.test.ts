// The install test's breakdown (issue 21): where `npm install -g` spent its time, read from the debug
// log `npm --timing --logs-dir` writes. Lines below are as npm 11 writes them.
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { parseInstallTiming, readNpmLogs } from "./support/Packages.js"

const LOG = [
  "0 verbose cli /usr/bin/node /usr/bin/npm",
  "14 timing idealTree:node_modules/conclave/node_modules/@conclave/server Completed in 3049ms",
  "52 timing idealTree Completed in 38368ms",
  "57 timing reifyNode:node_modules/conclave/node_modules/ms Completed in 8844ms",
  "301 timing reify:unpack Completed in 23830ms",
  "305 timing build:run:install:node_modules/conclave/node_modules/@parcel/watcher Completed in 874ms",
  "306 timing build:run:install:node_modules/conclave/node_modules/better-sqlite3 Completed in 319290ms",
  "307 timing build:run:install Completed in 323031ms",
  "312 timing command:install Completed in 385918ms"
].join("\n")

describe("parseInstallTiming", () => {
  it("reads resolve, unpack, each install script by package name, and the whole command", () => {
    const t = parseInstallTiming(LOG)
    assert.strictEqual(t.resolveMs, 38368)
    assert.strictEqual(t.unpackMs, 23830)
    assert.strictEqual(t.totalMs, 385918)
    assert.deepStrictEqual([...t.scriptsMs], [["@parcel/watcher", 874], ["better-sqlite3", 319290]])
  })

  it("leaves out what the log does not have (no --timing, or another log entirely)", () => {
    const t = parseInstallTiming("0 verbose cli /usr/bin/node /usr/bin/npm\ntiming idealTree Completed in soon\n")
    assert.deepStrictEqual(t, { totalMs: undefined, resolveMs: undefined, unpackMs: undefined, scriptsMs: new Map() })
  })

  it("readNpmLogs joins the .log files of a directory and is empty for a missing one", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "conclave-npm-logs-"))
    try {
      Fs.writeFileSync(Path.join(dir, "a-debug-0.log"), "1 timing idealTree Completed in 5ms")
      Fs.writeFileSync(Path.join(dir, "notes.txt"), "1 timing reify:unpack Completed in 7ms")
      assert.strictEqual(parseInstallTiming(readNpmLogs(dir)).resolveMs, 5)
      assert.strictEqual(parseInstallTiming(readNpmLogs(dir)).unpackMs, undefined)
      assert.strictEqual(readNpmLogs(Path.join(dir, "absent")), "")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
