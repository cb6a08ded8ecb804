// Issue 21, item 1: the packages install like a real tool. Every publishable package is packed
// (`npm pack`), the `@conclave/*` tarballs are served by a loopback registry for that scope only
// (public dependencies come from npm), and `npm install -g --prefix <empty dir> <the conclave
// tarball>` installs one tree, as `npm install -g conclave` does once they are published; then the installed command runs `--version`, `demo`, the
// hook and `bridge` under an MCP SDK client linked to a real server. Slow (better-sqlite3 compiles
// from source here): minutes, and it needs the npm registry.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assertBuilt, startServer } from "./support/Harness.js"
import {
  exec,
  localRegistry,
  npm,
  npmEnv,
  packAll,
  parseInstallTiming,
  PUBLISHED,
  readNpmLogs,
  ROOT
} from "./support/Packages.js"

assertBuilt()

const INSTALL_TARGET_S = 90

describe("install from packed tarballs (issue 21)", { timeout: 900_000 }, () => {
  it.scopedLive("npm install -g into an empty prefix gives a working `conclave`: --version, demo, hook, bridge", () =>
    Effect.gen(function*() {
      const work = yield* tempDir("conclave-install-")
      const packs = Path.join(work, "packs")
      const prefix = Path.join(work, "prefix")
      Fs.mkdirSync(packs)
      Fs.mkdirSync(prefix)

      const packed = yield* packAll(packs)
      assert.sameMembers(packed.map((p) => p.name), [
        "@conclave/protocol",
        "@conclave/client",
        "@conclave/server",
        "@conclave/bridge",
        "@conclave/console",
        "conclave"
      ])
      for (const p of packed) {
        assert.notProperty(p.manifest, "private", `${p.name} must be publishable`)
        assert.deepStrictEqual(p.manifest["publishConfig"], { access: "public" }, p.name)
        const listing = yield* exec("tar", ["tzf", p.file], { timeoutMs: 30_000 })
        // the console is its built assets (D-51: nothing fetched or built at run time)
        assert.include(
          listing.stdout,
          p.name === "@conclave/console" ? "package/dist/index.html" : "package/dist/index.js",
          p.name
        )
        assert.include(listing.stdout, "package/package.json", p.name)
        assert.notInclude(listing.stdout, ".tsbuildinfo", p.name)
        assert.notInclude(listing.stdout, "package/test/", p.name)
      }

      const registry = yield* localRegistry(packed)
      const cli = packed.find((p) => p.name === "conclave")!
      const npmLogs = Path.join(work, "npm-logs")
      const loadBefore = Os.loadavg()[0]!
      const started = Date.now()
      const install = yield* exec(
        npm,
        [
          "install",
          "-g",
          "--prefix",
          prefix,
          `--@conclave:registry=${registry.url}`,
          "--no-audit",
          "--no-fund",
          // the phase timings go to the debug log in npmLogs (read below for the breakdown)
          "--timing",
          "--logs-dir",
          npmLogs,
          cli.file
        ],
        { cwd: work, timeoutMs: 840_000, env: npmEnv() }
      )
      const seconds = (Date.now() - started) / 1000
      assert.strictEqual(install.code, 0, `npm install -g failed:\n${install.stderr}`)
      // The figure for the report (target: ≤ 90 s on the build machine), with where it went: on this
      // machine better-sqlite3's prebuilt binary (on GitHub) is unreachable, so it compiles SQLite
      // from source, one ~9 MB C file that takes ~75 s of CPU by itself (BENCHMARKS.md).
      const timing = parseInstallTiming(readNpmLogs(npmLogs))
      const s = (ms: number | undefined) => ms === undefined ? "n/a" : `${(ms / 1000).toFixed(1)} s`
      const scripts = [...timing.scriptsMs].map(([name, ms]) => `${name} ${s(ms)}`).join(", ")
      console.log(
        `install from packed tarballs: ${seconds.toFixed(1)} s (target ≤ ${INSTALL_TARGET_S} s); ` +
          `resolve ${s(timing.resolveMs)}, unpack ${s(timing.unpackMs)}, install scripts: ${scripts || "n/a"}; ` +
          `load average ${loadBefore.toFixed(1)} → ${Os.loadavg()[0]!.toFixed(1)}`
      )
      assert.strictEqual(registry.strays(), 0, "only @conclave packages are asked of the local registry")

      // One tree: conclave with its dependencies, the @conclave packages inside it.
      const lib = process.platform === "win32"
        ? Path.join(prefix, "node_modules")
        : Path.join(prefix, "lib", "node_modules")
      assert.deepStrictEqual(Fs.readdirSync(lib).filter((n) => !n.startsWith(".")), ["conclave"])
      for (const dir of PUBLISHED.filter((d) => d !== "cli")) {
        assert.isTrue(
          Fs.existsSync(
            Path.join(
              lib,
              "conclave",
              "node_modules",
              "@conclave",
              dir,
              "dist",
              dir === "console" ? "index.html" : "index.js"
            )
          ),
          dir
        )
      }

      const bin = Path.join(prefix, "bin", "conclave")
      const env = { ...process.env, NO_COLOR: "1" }
      const version = yield* exec(bin, ["--version"], { timeoutMs: 30_000, env })
      assert.strictEqual(version.stdout, `conclave ${cli.version}\n`)

      const demo = yield* exec(bin, ["demo"], { timeoutMs: 120_000, env, cwd: work })
      assert.strictEqual(demo.code, 0, demo.stderr)
      assert.match(demo.stdout, /^\[whisper\] alice\/laptop\/demo: .+\(seen by bob only\)$/m)
      assert.include(demo.stdout, "demo finished")

      const configDir = Path.join(work, "config")
      const hook = yield* exec(bin, ["--config-dir", configDir, "hook", "claude"], { timeoutMs: 30_000, env })
      assert.deepStrictEqual(hook, { stdout: "", stderr: "", code: 0 })

      // the installed bridge, linked to a real server, under an MCP SDK client
      const server = yield* startServer()
      const registered = yield* exec(
        bin,
        ["--config-dir", configDir, "register", "--server", server.url, "--username", "ines", "--machine", "box"],
        { timeoutMs: 60_000, env }
      )
      assert.strictEqual(registered.code, 0, registered.stderr)
      const client = new Client({ name: "install-test", version: "1" }, { capabilities: {} })
      const transport = new StdioClientTransport({
        command: bin,
        args: ["--config-dir", configDir, "bridge", "--as", "probe"],
        cwd: work,
        env: env as Record<string, string>,
        stderr: "pipe"
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => client.connect(transport)),
        () => Effect.promise(() => client.close().catch(() => undefined))
      )
      const tools = (yield* Effect.promise(() => client.listTools())).tools.map((t) => t.name)
      assert.includeMembers(tools, ["join_channel", "whoami", "inbox"])
      const deadline = Date.now() + 30_000
      let whoami = ""
      while (!whoami.includes("; link up;") && Date.now() < deadline) {
        const r = yield* Effect.promise(() => client.callTool({ name: "whoami", arguments: {} }))
        whoami = (r.content as Array<{ text: string }>).map((c) => c.text).join("\n")
        if (!whoami.includes("; link up;")) yield* Effect.sleep("100 millis")
      }
      assert.include(whoami, "ines/box/probe")
      assert.include(whoami, "; link up;")
      yield* server.stop
    }))

  it.scopedLive("changesets drive the versions and the CHANGELOGs (one version for the six packages)", () =>
    Effect.gen(function*() {
      const copy = yield* tempDir("conclave-changeset-")
      Fs.cpSync(Path.join(ROOT, ".changeset"), Path.join(copy, ".changeset"), { recursive: true })
      Fs.copyFileSync(Path.join(ROOT, "package.json"), Path.join(copy, "package.json"))
      for (const dir of [...PUBLISHED, "reliability"]) {
        Fs.mkdirSync(Path.join(copy, "packages", dir), { recursive: true })
        Fs.copyFileSync(
          Path.join(ROOT, "packages", dir, "package.json"),
          Path.join(copy, "packages", dir, "package.json")
        )
      }
      const changesets = Path.join(ROOT, "node_modules", "@changesets", "cli", "bin.js")
      const r = yield* exec(process.execPath, [changesets, "version"], { cwd: copy, timeoutMs: 120_000 })
      assert.strictEqual(r.code, 0, r.stderr + r.stdout)
      const manifest = (dir: string) =>
        JSON.parse(Fs.readFileSync(Path.join(copy, "packages", dir, "package.json"), "utf8")) as {
          version: string
          dependencies: Record<string, string>
        }
      const versions = new Set(PUBLISHED.map((d) => manifest(d).version))
      assert.strictEqual(versions.size, 1, [...versions].join(", "))
      const [next] = [...versions]
      const before = JSON.parse(Fs.readFileSync(Path.join(ROOT, "packages", "cli", "package.json"), "utf8")) as {
        version: string
      }
      assert.notStrictEqual(next, before.version)
      assert.strictEqual(manifest("cli").dependencies["@conclave/bridge"], next)
      const changelog = Fs.readFileSync(Path.join(copy, "packages", "cli", "CHANGELOG.md"), "utf8")
      assert.include(changelog, `## ${next}`)
      assert.include(changelog, "conclave hook claude")
      assert.include(changelog, "conclave setup claude|codex|gemini")
    }))
})
