// D-52: what `conclave setup codex|gemini` writes, read back by the harnesses' own CLIs from npm
// (pinned): Codex lists the server enabled with our command and args, and Gemini CLI (in a trusted
// folder) starts the bridge and reports it connected.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { claudeEnv, CODEX, ensureTool, GEMINI_CLI } from "./support/ClaudeCode.js"
import { assertBuilt, ok } from "./support/Harness.js"
import { exec } from "./support/Packages.js"

assertBuilt()

const home = Effect.gen(function*() {
  const dir = Fs.realpathSync(yield* tempDir("conclave-harness-"))
  const project = Path.join(dir, "proj")
  Fs.mkdirSync(project)
  return { dir, project, env: claudeEnv(dir), runEnv: { HOME: dir, CLAUDE_CONFIG_DIR: "", CODEX_HOME: "" } }
})

describe("the harnesses read what conclave setup writes", { timeout: 900_000 }, () => {
  it.scopedLive("codex mcp list / get: the conclave server, enabled, `conclave bridge`", () =>
    Effect.gen(function*() {
      const codex = yield* ensureTool(CODEX, "codex")
      const h = yield* home
      const toml = Path.join(h.dir, ".codex", "config.toml")
      Fs.mkdirSync(Path.dirname(toml), { recursive: true })
      Fs.writeFileSync(toml, `# mine\n[mcp_servers.docs]\ncommand = "docs-mcp"\n`)
      yield* ok(["setup", "codex"], { cwd: h.project, env: h.runEnv })
      const list = yield* exec(codex, ["mcp", "list"], { env: h.env, cwd: h.project, timeoutMs: 120_000 })
      assert.strictEqual(list.code, 0, list.stderr)
      assert.match(list.stdout, /^conclave\s+conclave\s+bridge\s.*enabled/m, list.stdout)
      assert.match(list.stdout, /^docs\s+docs-mcp\s/m, list.stdout)
      const get = yield* exec(codex, ["mcp", "get", "conclave"], { env: h.env, cwd: h.project, timeoutMs: 120_000 })
      assert.match(get.stdout, /^\s*command: conclave$/m, get.stdout)
      assert.match(get.stdout, /^\s*args: bridge$/m, get.stdout)
    }))

  it.scopedLive("gemini mcp list: the bridge from ~/.gemini/settings.json is connected", () =>
    Effect.gen(function*() {
      const gemini = yield* ensureTool(GEMINI_CLI, "gemini")
      const h = yield* home
      yield* ok(["setup", "gemini"], { cwd: h.project, env: h.runEnv })
      // Gemini CLI starts MCP servers only in trusted folders.
      Fs.writeFileSync(
        Path.join(h.dir, ".gemini", "trustedFolders.json"),
        JSON.stringify({ [h.project]: "TRUST_FOLDER" })
      )
      const list = yield* exec(gemini, ["mcp", "list"], { env: h.env, cwd: h.project, timeoutMs: 120_000 })
      assert.match(
        list.stdout + list.stderr,
        /conclave: conclave bridge \(stdio\) - Connected/,
        list.stdout + list.stderr
      )
    }))
})
