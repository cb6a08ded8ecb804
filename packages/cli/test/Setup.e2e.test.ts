// `conclave setup claude|codex|gemini` (D-52) with the real binary on temporary homes: the written
// files parse back in each harness's format, the user's other entries survive, a second run changes
// nothing, --dry-run writes nothing, and bad flags or unreadable files fail clearly without writes.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Toml from "smol-toml"
import { assertBuilt, cli, ko, ok } from "./support/Harness.js"

assertBuilt()

interface Home {
  readonly home: string
  readonly project: string
  readonly env: Readonly<Record<string, string>>
}

/** A temp home with a project directory in it; the harnesses' own variables unset. */
const home = Effect.gen(function*() {
  const dir = Fs.realpathSync(yield* tempDir("conclave-setup-"))
  const project = Path.join(dir, "work", "proj")
  Fs.mkdirSync(project, { recursive: true })
  return { home: dir, project, env: { HOME: dir, CLAUDE_CONFIG_DIR: "", CODEX_HOME: "" } } satisfies Home
})

const run = (h: Home, args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  ok(args, { cwd: h.project, env: { ...h.env, ...env } })
const fail = (h: Home, args: ReadonlyArray<string>) => ko(args, { cwd: h.project, env: h.env })

const readJson = (path: string) => JSON.parse(Fs.readFileSync(path, "utf8")) as Record<string, unknown>
const snapshot = (paths: ReadonlyArray<string>) =>
  paths.map((p) => (Fs.existsSync(p) ? Fs.readFileSync(p, "utf8") : null))

const HOOK_GROUP = { hooks: [{ type: "command", command: "conclave hook claude" }] }

describe("conclave setup claude", { timeout: 60_000 }, () => {
  it.scopedLive("local scope: `claude mcp add --scope local` shape in ~/.claude.json and hooks in settings.local.json; twice changes nothing", () =>
    Effect.gen(function*() {
      const h = yield* home
      const first = yield* run(h, ["setup", "claude"])
      assert.include(first.stdout, "updated ~/.claude.json")
      assert.include(first.stdout, "hooks.UserPromptSubmit")
      assert.include(first.stdout, "✓ set up conclave for Claude Code (local scope): 2 file(s) updated")

      const claudeJson = readJson(Path.join(h.home, ".claude.json"))
      const projects = claudeJson["projects"] as Record<string, { mcpServers: Record<string, unknown> }>
      assert.deepStrictEqual(projects[h.project]!.mcpServers["conclave"], {
        type: "stdio",
        command: "conclave",
        args: ["bridge"],
        env: {}
      })
      assert.strictEqual(Fs.statSync(Path.join(h.home, ".claude.json")).mode & 0o777, 0o600)
      const settings = readJson(Path.join(h.project, ".claude", "settings.local.json"))
      assert.deepStrictEqual(settings, { hooks: { UserPromptSubmit: [HOOK_GROUP], Stop: [HOOK_GROUP] } })

      const files = [Path.join(h.home, ".claude.json"), Path.join(h.project, ".claude", "settings.local.json")]
      const before = snapshot(files)
      const second = yield* run(h, ["setup", "claude", "--scope", "local"])
      assert.strictEqual(
        second.stdout,
        "unchanged ~/.claude.json\nunchanged ~/work/proj/.claude/settings.local.json\n" +
          "✓ conclave is already set up for Claude Code (local scope); nothing changed\n"
      )
      assert.deepStrictEqual(snapshot(files), before)
    }))

  it.scopedLive("user scope keeps every other entry, the file's indentation, and other hooks; an older conclave hook is replaced", () =>
    Effect.gen(function*() {
      const h = yield* home
      const claudeJson = Path.join(h.home, ".claude.json")
      const original = {
        numStartups: 7,
        projects: { "/elsewhere": { mcpServers: { other: { type: "stdio", command: "x", args: [], env: {} } } } },
        mcpServers: {
          github: { type: "http", url: "https://example.test/mcp" },
          conclave: { type: "stdio", command: "conclave", args: ["--config-dir", "/old", "bridge"], env: { A: "1" } }
        }
      }
      Fs.writeFileSync(claudeJson, JSON.stringify(original, null, 4) + "\n", { mode: 0o640 })
      const settingsPath = Path.join(h.home, ".claude", "settings.json")
      Fs.mkdirSync(Path.dirname(settingsPath), { recursive: true })
      const otherHook = { matcher: "Bash", hooks: [{ type: "command", command: "audit.sh" }] }
      Fs.writeFileSync(
        settingsPath,
        JSON.stringify({
          model: "opus",
          hooks: {
            PreToolUse: [otherHook],
            UserPromptSubmit: [{ hooks: [{ type: "command", command: "date" }] }],
            Stop: [{ hooks: [{ type: "command", command: "conclave --config-dir /old hook claude", timeout: 5 }] }]
          }
        })
      )

      const r = yield* run(h, ["setup", "claude", "--scope", "user"])
      assert.include(r.stdout, `~ mcpServers.conclave:`)
      assert.include(r.stdout, `~ hooks.Stop: "conclave --config-dir /old hook claude" → "conclave hook claude"`)

      const text = Fs.readFileSync(claudeJson, "utf8")
      assert.match(text, /^{\n {4}"numStartups": 7,/)
      assert.strictEqual(Fs.statSync(claudeJson).mode & 0o777, 0o640)
      const after = JSON.parse(text) as typeof original
      assert.deepStrictEqual(after.projects, original.projects)
      assert.deepStrictEqual(after.mcpServers.github, original.mcpServers.github)
      // command and args replaced; the user's env for the entry kept
      assert.deepStrictEqual(after.mcpServers.conclave, {
        type: "stdio",
        command: "conclave",
        args: ["bridge"],
        env: { A: "1" }
      })
      const settings = readJson(settingsPath) as {
        model: string
        hooks: Record<string, ReadonlyArray<unknown>>
      }
      assert.strictEqual(settings.model, "opus")
      assert.deepStrictEqual(settings.hooks["PreToolUse"], [otherHook])
      assert.deepStrictEqual(settings.hooks["UserPromptSubmit"], [
        { hooks: [{ type: "command", command: "date" }] },
        HOOK_GROUP
      ])
      assert.deepStrictEqual(settings.hooks["Stop"], [
        { hooks: [{ type: "command", command: "conclave hook claude", timeout: 5 }] }
      ])
      const again = yield* run(h, ["setup", "claude", "--scope", "user"])
      assert.include(again.stdout, "nothing changed")
    }))

  it.scopedLive("--config-dir is carried into the bridge's args and the hook command (quoted); CLAUDE_CONFIG_DIR is honoured", () =>
    Effect.gen(function*() {
      const h = yield* home
      const configDir = Path.join(h.home, "my conclave")
      const claudeDir = Path.join(h.home, "claude-config")
      const r = yield* run(h, ["--config-dir", configDir, "setup", "claude", "--scope", "user"], {
        CLAUDE_CONFIG_DIR: claudeDir
      })
      assert.include(r.stdout, "updated ~/claude-config/.claude.json")
      const servers = readJson(Path.join(claudeDir, ".claude.json"))["mcpServers"] as Record<string, unknown>
      assert.deepStrictEqual(servers["conclave"], {
        type: "stdio",
        command: "conclave",
        args: ["--config-dir", configDir, "bridge"],
        env: {}
      })
      const hooks = readJson(Path.join(claudeDir, "settings.json"))["hooks"] as Record<string, unknown>
      assert.deepStrictEqual(hooks["Stop"], [
        { hooks: [{ type: "command", command: `conclave --config-dir '${configDir}' hook claude` }] }
      ])
      assert.isFalse(Fs.existsSync(Path.join(h.home, ".claude.json")))
    }))

  it.scopedLive("--dry-run prints the change and writes nothing", () =>
    Effect.gen(function*() {
      const h = yield* home
      const r = yield* run(h, ["setup", "claude", "--dry-run"])
      assert.include(r.stdout, "would update ~/.claude.json")
      assert.include(
        r.stdout,
        `+ projects[${
          JSON.stringify(h.project)
        }].mcpServers.conclave = {"type":"stdio","command":"conclave","args":["bridge"],"env":{}}`
      )
      assert.include(r.stdout, `+ hooks.Stop: "conclave hook claude"`)
      assert.include(r.stdout, "dry run: nothing was written (2 file(s) would change)")
      assert.isFalse(Fs.existsSync(Path.join(h.home, ".claude.json")))
      assert.isFalse(Fs.existsSync(Path.join(h.project, ".claude")))
    }))
})

describe("conclave setup codex", { timeout: 60_000 }, () => {
  it.scopedLive("user scope appends [mcp_servers.conclave] to config.toml, keeping comments and other servers; twice changes nothing", () =>
    Effect.gen(function*() {
      const h = yield* home
      const file = Path.join(h.home, ".codex", "config.toml")
      Fs.mkdirSync(Path.dirname(file), { recursive: true })
      const original = `# my codex settings
model = "gpt-5" # the default

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"]
`
      Fs.writeFileSync(file, original)
      const r = yield* run(h, ["setup", "codex"])
      assert.include(
        r.stdout,
        `updated ~/.codex/config.toml\n  + [mcp_servers.conclave] { command = "conclave", args = ["bridge"] }`
      )
      const text = Fs.readFileSync(file, "utf8")
      assert.isTrue(text.startsWith(original), text)
      const parsed = Toml.parse(text) as { model: string; mcp_servers: Record<string, unknown> }
      assert.strictEqual(parsed.model, "gpt-5")
      assert.deepStrictEqual(parsed.mcp_servers, {
        docs: { command: "npx", args: ["-y", "docs-mcp"] },
        conclave: { command: "conclave", args: ["bridge"] }
      })
      const again = yield* run(h, ["setup", "codex", "--scope", "user"])
      assert.include(again.stdout, "unchanged ~/.codex/config.toml")
      assert.include(again.stdout, "✓ conclave is already set up for Codex (user scope); nothing changed")
      assert.strictEqual(Fs.readFileSync(file, "utf8"), text)
    }))

  it.scopedLive("an existing entry gets its command and args replaced (even a multi-line args array); its other keys and sub-tables stay", () =>
    Effect.gen(function*() {
      const h = yield* home
      const codexHome = Path.join(h.home, "codex-home")
      const file = Path.join(codexHome, "config.toml")
      Fs.mkdirSync(codexHome, { recursive: true })
      Fs.writeFileSync(
        file,
        `[mcp_servers.conclave] # ours
command = "/opt/old/conclave"
args = [
  "bridge",
  "--as", "old",
]
startup_timeout_sec = 20

[mcp_servers.conclave.env]
CONCLAVE_LOG_LEVEL = "debug"

[profiles.fast]
model = "small"
`
      )
      const r = yield* run(h, ["setup", "codex"], { CODEX_HOME: codexHome })
      assert.include(r.stdout, "~ [mcp_servers.conclave] command/args →")
      const parsed = Toml.parse(Fs.readFileSync(file, "utf8")) as Record<string, unknown>
      assert.deepStrictEqual(parsed, {
        mcp_servers: {
          conclave: {
            command: "conclave",
            args: ["bridge"],
            startup_timeout_sec: 20,
            env: { CONCLAVE_LOG_LEVEL: "debug" }
          }
        },
        profiles: { fast: { model: "small" } }
      })
      assert.include(Fs.readFileSync(file, "utf8"), "[mcp_servers.conclave] # ours")
    }))

  it.scopedLive("local scope writes the project's .codex/config.toml and says Codex reads it only when trusted", () =>
    Effect.gen(function*() {
      const h = yield* home
      const r = yield* run(h, ["setup", "codex", "--scope", "local"])
      assert.include(r.stdout, "updated ~/work/proj/.codex/config.toml")
      assert.include(r.stdout, "only when the project is trusted")
      assert.deepStrictEqual(Toml.parse(Fs.readFileSync(Path.join(h.project, ".codex", "config.toml"), "utf8")), {
        mcp_servers: { conclave: { command: "conclave", args: ["bridge"] } }
      })
    }))
})

describe("conclave setup gemini", { timeout: 60_000 }, () => {
  it.scopedLive("user and local scopes write mcpServers.conclave, keeping other settings; twice changes nothing", () =>
    Effect.gen(function*() {
      const h = yield* home
      const user = Path.join(h.home, ".gemini", "settings.json")
      Fs.mkdirSync(Path.dirname(user), { recursive: true })
      Fs.writeFileSync(user, JSON.stringify({ theme: "Dracula", mcpServers: { fs: { command: "fs-mcp" } } }, null, 2))
      yield* run(h, ["setup", "gemini"])
      assert.deepStrictEqual(readJson(user), {
        theme: "Dracula",
        mcpServers: { fs: { command: "fs-mcp" }, conclave: { command: "conclave", args: ["bridge"] } }
      })
      const again = yield* run(h, ["setup", "gemini", "--scope", "user"])
      assert.include(again.stdout, "nothing changed")

      yield* run(h, ["setup", "gemini", "--scope", "local"])
      assert.deepStrictEqual(readJson(Path.join(h.project, ".gemini", "settings.json")), {
        mcpServers: { conclave: { command: "conclave", args: ["bridge"] } }
      })
    }))
})

describe("conclave setup: bad input", { timeout: 60_000 }, () => {
  it.scopedLive("an unknown harness or scope is refused", () =>
    Effect.gen(function*() {
      const h = yield* home
      const harness = yield* fail(h, ["setup", "cursor"])
      assert.include(harness.stderr + harness.stdout, "claude, codex, gemini")
      const scope = yield* fail(h, ["setup", "claude", "--scope", "project"])
      assert.include(scope.stderr + scope.stdout, "local, user")
      const missing = yield* cli(["setup"], { cwd: h.project, env: h.env })
      assert.notStrictEqual(missing.code, 0)
      assert.isFalse(Fs.existsSync(Path.join(h.home, ".claude.json")))
    }))

  it.scopedLive("corrupt or mis-shaped files are reported with their path, and no file is written", () =>
    Effect.gen(function*() {
      const h = yield* home
      const claudeJson = Path.join(h.home, ".claude.json")
      const settings = Path.join(h.project, ".claude", "settings.local.json")
      Fs.mkdirSync(Path.dirname(settings), { recursive: true })

      // the second file is the broken one: the first must not have been written either
      Fs.writeFileSync(settings, `{ "hooks": { "Stop": { "not": "an array" } } }`)
      const shape = yield* fail(h, ["setup", "claude"])
      assert.include(shape.stderr, `cannot edit \`${settings}\`: \`hooks.Stop\` is not a JSON array`)
      assert.isFalse(Fs.existsSync(claudeJson))

      Fs.writeFileSync(settings, `{ "hooks": { // a comment\n } }`)
      const corrupt = yield* fail(h, ["setup", "claude"])
      assert.include(corrupt.stderr, `cannot read \`${settings}\`: it is not valid JSON`)
      assert.include(corrupt.stderr, "nothing was changed")

      Fs.writeFileSync(claudeJson, `[1, 2]`)
      const array = yield* fail(h, ["setup", "claude", "--scope", "user"])
      assert.include(array.stderr, "expected a JSON object at the top level")
      Fs.writeFileSync(claudeJson, JSON.stringify({ mcpServers: ["conclave"] }))
      const servers = yield* fail(h, ["setup", "claude", "--scope", "user"])
      assert.include(servers.stderr, "`mcpServers` is not a JSON object")
      assert.strictEqual(Fs.readFileSync(claudeJson, "utf8"), JSON.stringify({ mcpServers: ["conclave"] }))

      const toml = Path.join(h.home, ".codex", "config.toml")
      Fs.mkdirSync(Path.dirname(toml), { recursive: true })
      Fs.writeFileSync(toml, `model = "x"\n[mcp_servers\n`)
      const badToml = yield* fail(h, ["setup", "codex"])
      assert.include(badToml.stderr, `cannot read \`${toml}\`: it is not valid TOML`)
      assert.strictEqual(Fs.readFileSync(toml, "utf8"), `model = "x"\n[mcp_servers\n`)

      Fs.writeFileSync(toml, `mcp_servers = { conclave = { command = "old" } }\n`)
      const inline = yield* fail(h, ["setup", "codex"])
      assert.include(inline.stderr, "written in a form this command does not edit")
      assert.include(inline.stderr, `command = "conclave" and args = ["bridge"]`)

      Fs.writeFileSync(toml, `[mcp_servers]\nconclave = "not a table"\n`)
      const scalar = yield* fail(h, ["setup", "codex"])
      assert.include(scalar.stderr, "`mcp_servers.conclave` is not a table")
    }))
})
