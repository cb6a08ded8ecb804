// Issue 21, items 2 and 3, checked with Claude Code's own CLI (`@anthropic-ai/claude-code`, pinned):
// the repository's plugin and marketplace validate, `claude plugin marketplace add` + `claude plugin
// install` is the whole set-up and `claude mcp get` reports the bridge connected; and what
// `conclave setup claude` writes is read by Claude Code as a connected server. The exit code of
// `claude mcp get` is always 0, so the status line is checked.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { claude, claudeEnv, ensureClaude } from "./support/ClaudeCode.js"
import { assertBuilt, ok } from "./support/Harness.js"
import { exec, ROOT } from "./support/Packages.js"

assertBuilt()

const PLUGIN = Path.join(ROOT, "plugins", "conclave")

describe("Claude Code plugin and setup, with the real claude CLI", { timeout: 900_000 }, () => {
  it.scopedLive("the plugin is in step with the CLI: its version and its generated skill", () =>
    Effect.gen(function*() {
      const r = yield* exec(process.execPath, [Path.join(ROOT, "scripts", "sync-plugin.mjs"), "--check"], {
        timeoutMs: 60_000
      })
      assert.strictEqual(r.code, 0, r.stderr)
      const manifest = JSON.parse(Fs.readFileSync(Path.join(PLUGIN, ".claude-plugin", "plugin.json"), "utf8")) as {
        mcpServers: Record<string, unknown>
      }
      assert.deepStrictEqual(manifest.mcpServers, { conclave: { command: "conclave", args: ["bridge"] } })
      const hooks = JSON.parse(Fs.readFileSync(Path.join(PLUGIN, "hooks", "hooks.json"), "utf8")) as {
        hooks: Record<string, unknown>
      }
      const group = [{ hooks: [{ type: "command", command: "conclave hook claude" }] }]
      assert.deepStrictEqual(hooks.hooks, { UserPromptSubmit: group, Stop: group })
    }))

  it.scopedLive("claude plugin validate passes for the plugin and the marketplace (also --strict)", () =>
    Effect.gen(function*() {
      const bin = yield* ensureClaude
      const home = yield* tempDir("conclave-claude-")
      const env = claudeEnv(home)
      for (const target of [PLUGIN, ROOT]) {
        for (const strict of [[], ["--strict"]]) {
          const r = yield* claude(bin, ["plugin", "validate", target, ...strict], env, home)
          assert.strictEqual(r.code, 0, `${target} ${strict.join("")}: ${r.stdout}${r.stderr}`)
          assert.include(r.stdout, "✔ Validation passed")
        }
      }
      const plugin = yield* claude(bin, ["plugin", "validate", PLUGIN], env, home)
      assert.include(plugin.stdout, `mcpServers: conclave stdio conclave ["bridge"]`)
      assert.include(plugin.stdout, "skills: conclave:conclave")
      assert.include(plugin.stdout, `hooks: UserPromptSubmit command "conclave hook claude"`)
    }))

  it.scopedLive("marketplace add + plugin install into a temp config: claude mcp get shows the bridge connected", () =>
    Effect.gen(function*() {
      const bin = yield* ensureClaude
      const home = yield* tempDir("conclave-claude-")
      const project = Path.join(home, "proj")
      Fs.mkdirSync(project)
      const env = claudeEnv(home)
      const added = yield* claude(bin, ["plugin", "marketplace", "add", ROOT], env, project)
      assert.include(added.stdout + added.stderr, "Successfully added marketplace: conclave")
      const installed = yield* claude(bin, ["plugin", "install", "conclave@conclave"], env, project)
      assert.include(installed.stdout + installed.stderr, "Successfully installed plugin: conclave@conclave")
      const list = yield* claude(bin, ["plugin", "list"], env, project)
      assert.match(list.stdout, /conclave@conclave[\s\S]*Status: ✔ enabled/)
      const get = yield* claude(bin, ["mcp", "get", "plugin:conclave:conclave"], env, project)
      assert.match(get.stdout, /^\s*Status: ✔ Connected$/m, get.stdout + get.stderr)
    }))

  it.scopedLive("conclave setup claude writes a server that claude mcp get reports connected (local and user scope)", () =>
    Effect.gen(function*() {
      const bin = yield* ensureClaude
      const home = yield* tempDir("conclave-claude-")
      const project = Path.join(home, "proj")
      Fs.mkdirSync(project)
      const env = claudeEnv(home)
      const runEnv = { HOME: home, CLAUDE_CONFIG_DIR: "", CODEX_HOME: "" }
      yield* ok(["setup", "claude"], { cwd: project, env: runEnv })
      const local = yield* claude(bin, ["mcp", "get", "conclave"], env, project)
      assert.match(local.stdout, /Scope: Local config/, local.stdout)
      assert.match(local.stdout, /^\s*Status: ✔ Connected$/m, local.stdout + local.stderr)
      assert.match(local.stdout, /^\s*Args: bridge$/m)

      // Claude Code itself then adds a server next to ours: both are there, nothing lost.
      const other = yield* claude(bin, ["mcp", "add", "--scope", "local", "other", "--", "true"], env, project)
      assert.strictEqual(other.code, 0, other.stderr)
      const again = yield* ok(["setup", "claude"], { cwd: project, env: runEnv })
      assert.include(again.stdout, "nothing changed")

      const elsewhere = Path.join(home, "elsewhere")
      Fs.mkdirSync(elsewhere)
      yield* ok(["setup", "claude", "--scope", "user"], { cwd: elsewhere, env: runEnv })
      const user = yield* claude(bin, ["mcp", "get", "conclave"], env, elsewhere)
      assert.match(user.stdout, /Scope: User config/, user.stdout)
      assert.match(user.stdout, /^\s*Status: ✔ Connected$/m, user.stdout + user.stderr)
    }))
})
