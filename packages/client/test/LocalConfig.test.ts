import { LocalConfig } from "@conclave/client"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"

const writeConfig = (dir: string, text: string) => Effect.promise(() => Fs.writeFile(LocalConfig.configPath(dir), text))

const sample: LocalConfig.LocalConfig = {
  default_permission: "converse",
  loop_limit: 7,
  servers: [
    { url: "wss://conclave.example.com", username: "aaron", machine: "workstation" },
    { url: "ws://127.0.0.1:4390", username: "a", machine: "b" }
  ],
  overrides: [
    { server: "wss://conclave.example.com", channel: "ops", level: "act" },
    { server: "wss://conclave.example.com", channel: null, level: "mute" }
  ]
}

describe("LocalConfig", () => {
  it.scoped("S-016 a missing file means defaults", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const config = yield* LocalConfig.load(dir)
      assert.deepStrictEqual(config, LocalConfig.empty)
      assert.strictEqual(config.default_permission, "notify")
      assert.strictEqual(config.loop_limit, null)
      assert.deepStrictEqual([config.servers, config.overrides], [[], []])
      const missingDir = yield* LocalConfig.load(Path.join(dir, "nope"))
      assert.deepStrictEqual(missingDir, LocalConfig.empty)
    }))

  it.scoped("S-017 atomic write: no temp file remains and the second save replaces the first", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* LocalConfig.save(dir, { ...LocalConfig.empty, default_permission: "converse" })
      assert.deepStrictEqual(yield* Effect.promise(() => Fs.readdir(dir)), ["config.toml"])
      yield* LocalConfig.save(dir, { ...LocalConfig.empty, default_permission: "act" })
      assert.deepStrictEqual(yield* Effect.promise(() => Fs.readdir(dir)), ["config.toml"])
      assert.deepStrictEqual(yield* LocalConfig.load(dir), { ...LocalConfig.empty, default_permission: "act" })
    }))

  it.scoped("save creates the directory and round-trips every field", () =>
    Effect.gen(function*() {
      const dir = Path.join(yield* tempDir(), "deep", "conclave")
      yield* LocalConfig.save(dir, sample)
      assert.deepStrictEqual(yield* LocalConfig.load(dir), sample)
      const text = yield* Effect.promise(() => Fs.readFile(LocalConfig.configPath(dir), "utf8"))
      assert.include(text, "default_permission = \"converse\"")
      assert.include(text, "[[servers]]")
      assert.include(text, "[[overrides]]")
      // The whisper override has no channel key.
      const whisperBlock = text.split("[[overrides]]")[2]
      assert.notInclude(whisperBlock, "channel")
    }))

  it.scoped("reads the SPEC §5.3 example; unknown keys are ignored; missing keys default", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* writeConfig(
        dir,
        `default_permission = "notify"          # comment
future_key = 3

[[servers]]
url = "wss://conclave.example.com"
username = "aaron"
machine = "workstation"
colour = "blue"

[[overrides]]
server = "wss://conclave.example.com"
channel = "ops"
level = "converse"

[[overrides]]
server = "wss://conclave.example.com"
level = "act"
`
      )
      const config = yield* LocalConfig.load(dir)
      assert.deepStrictEqual(config, {
        default_permission: "notify",
        loop_limit: null,
        servers: [{ url: "wss://conclave.example.com", username: "aaron", machine: "workstation" }],
        overrides: [
          { server: "wss://conclave.example.com", channel: "ops", level: "converse" },
          { server: "wss://conclave.example.com", channel: null, level: "act" }
        ]
      })
      yield* writeConfig(dir, "")
      assert.deepStrictEqual(yield* LocalConfig.load(dir), LocalConfig.empty)
      yield* writeConfig(dir, "loop_limit = 0\n")
      assert.strictEqual((yield* LocalConfig.load(dir)).loop_limit, 0)
      // the permission relay switch (SPEC §4.5.3 remote approvers): absent = on; kept by render
      yield* writeConfig(dir, "permission_relay = false\n")
      const off = yield* LocalConfig.load(dir)
      assert.strictEqual(off.permission_relay, false)
      assert.include(LocalConfig.render(off), "permission_relay = false")
      assert.isUndefined(LocalConfig.empty.permission_relay)
    }))

  it.scoped("URLs are normalized on load and save (D-28)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* writeConfig(
        dir,
        `[[servers]]\nurl = "WS://Host:80/"\nusername = "a"\nmachine = "m"\n\n[[overrides]]\nserver = "ws://HOST/"\nchannel = "c"\nlevel = "act"\n`
      )
      const config = yield* LocalConfig.load(dir)
      assert.strictEqual(config.servers[0].url, "ws://host")
      assert.strictEqual(config.overrides[0].server, "ws://host")
      yield* LocalConfig.save(
        dir,
        LocalConfig.upsertRegistration(LocalConfig.empty, { url: "WSS://X:443/", username: "u", machine: "m" })
      )
      const text = yield* Effect.promise(() => Fs.readFile(LocalConfig.configPath(dir), "utf8"))
      assert.include(text, "url = \"wss://x\"")
    }))

  it.scoped("a syntax error is a ConfigError naming the file and the line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* writeConfig(dir, "default_permission = \"notify\"\n\n[[servers]\nurl = 1\n")
      const error = yield* Effect.flip(LocalConfig.load(dir))
      assert.strictEqual(error._tag, "ConfigError")
      assert.strictEqual(error.line, 3)
      assert.include(error.message, LocalConfig.configPath(dir))
      assert.include(error.message, "line 3")
    }))

  it.scoped("wrong types are clear ConfigErrors naming the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["default_permission = \"bogus\"\n", "default_permission"],
        ["servers = \"ws://h\"\n", "servers"],
        ["[[servers]]\nurl = \"ws://h\"\nusername = \"u\"\n", "machine"],
        ["[[servers]]\nurl = 5\nusername = \"u\"\nmachine = \"m\"\n", "url"],
        ["[[overrides]]\nserver = \"ws://h\"\nlevel = \"loud\"\n", "level"],
        ["loop_limit = -1\n", "loop_limit"],
        ["loop_limit = 1.5\n", "loop_limit"],
        ["loop_limit = \"20\"\n", "loop_limit"],
        ["permission_relay = \"yes\"\n", "permission_relay"],
        ["permission_relay = 1\n", "expected true or false, got 1"]
      ]
      for (const [text, mentions] of cases) {
        yield* writeConfig(dir, text)
        const error = yield* Effect.flip(LocalConfig.load(dir))
        assert.strictEqual(error._tag, "ConfigError", text)
        assert.include(error.message, LocalConfig.configPath(dir), text)
        assert.include(error.message, mentions, text)
      }
      yield* writeConfig(dir, "# top\ndefault_permission = \"bogus\"\n")
      const error = yield* Effect.flip(LocalConfig.load(dir))
      assert.strictEqual(error.line, 2)
      assert.include(error.message, "unknown permission level `bogus`")
      yield* writeConfig(
        dir,
        "[[servers]]\nurl = \"ws://a\"\nusername = \"u\"\nmachine = \"m\"\n\n[[servers]]\nurl = \"ws://b\"\n"
      )
      const nested = yield* Effect.flip(LocalConfig.load(dir))
      assert.strictEqual(nested.line, 6)
      assert.include(nested.message, "servers[1].username")
    }))

  it.scoped("an unreadable config path is a ConfigError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* Effect.promise(() => Fs.mkdir(LocalConfig.configPath(dir)))
      const error = yield* Effect.flip(LocalConfig.load(dir))
      assert.strictEqual(error._tag, "ConfigError")
      const saveError = yield* Effect.flip(LocalConfig.save(dir, LocalConfig.empty))
      assert.strictEqual(saveError._tag, "ConfigError")
      const entries = yield* Effect.promise(() => Fs.readdir(dir))
      assert.deepStrictEqual(entries, ["config.toml"], "the temp file was cleaned up")
    }))

  it("parse reports schema errors without touching the disk", () => {
    const result = LocalConfig.parse("/x/config.toml", "overrides = 3")
    assert.isTrue(Either.isLeft(result))
  })

  describe("pure helpers", () => {
    it("upsertRegistration replaces the same normalized URL in place", () => {
      const c1 = LocalConfig.upsertRegistration(sample, {
        url: "WSS://conclave.example.com/",
        username: "x",
        machine: "y"
      })
      assert.deepStrictEqual(c1.servers, [
        { url: "wss://conclave.example.com", username: "x", machine: "y" },
        sample.servers[1]
      ])
      const c2 = LocalConfig.upsertRegistration(sample, { url: "ws://new", username: "x", machine: "y" })
      assert.strictEqual(c2.servers.length, 3)
      assert.deepStrictEqual(LocalConfig.findRegistration(c2, "ws://new/"), Option.some(c2.servers[2]))
    })

    it("removeServer drops the registration and its overrides", () => {
      const removed = LocalConfig.removeServer(sample, "wss://Conclave.Example.com")
      assert.isTrue(Option.isSome(removed))
      if (Option.isSome(removed)) {
        assert.strictEqual(removed.value.removedOverrides, 2)
        assert.deepStrictEqual(removed.value.config.servers, [sample.servers[1]])
        assert.deepStrictEqual(removed.value.config.overrides, [])
      }
      assert.isTrue(Option.isNone(LocalConfig.removeServer(sample, "ws://unknown")))
    })

    it("setOverride replaces in place semantics: remove old, append new", () => {
      const c = LocalConfig.setOverride(sample, {
        server: "wss://conclave.example.com/",
        channel: "ops",
        level: "mute"
      })
      assert.deepStrictEqual(c.overrides, [
        { server: "wss://conclave.example.com", channel: null, level: "mute" },
        { server: "wss://conclave.example.com", channel: "ops", level: "mute" }
      ])
      const w = LocalConfig.setOverride(sample, { server: "wss://conclave.example.com", channel: null, level: "act" })
      assert.deepStrictEqual(w.overrides.map((o) => [o.channel, o.level]), [["ops", "act"], [null, "act"]])
      const n = LocalConfig.setOverride(sample, { server: "ws://other", channel: "ops", level: "notify" })
      assert.strictEqual(n.overrides.length, 3)
    })

    it("setDefault", () => {
      assert.strictEqual(LocalConfig.setDefault(sample, "mute").default_permission, "mute")
      assert.strictEqual(sample.default_permission, "converse")
    })
  })
})
