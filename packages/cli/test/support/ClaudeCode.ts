// Test support: the real harness CLIs from npm (Claude Code, Codex, Gemini CLI), pinned, installed
// once into node_modules/.cache (hundreds of MB that only these tests need), run offline on a temp
// HOME as STACK.md describes (no login is needed for their plugin and MCP commands).
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { exec, npm, npmEnv, ROOT } from "./Packages.js"

export const CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.330"
export const CODEX = "@openai/codex@0.171.0"
export const GEMINI_CLI = "@google/gemini-cli@0.61.0"

/**
 * A harness CLI from npm (`spec` pins the version), installed on first use into its own directory
 * under node_modules/.cache; fails with npm's output when it cannot be installed.
 */
export const ensureTool = (spec: string, bin: string) =>
  Effect.gen(function*() {
    const cache = Path.join(ROOT, "node_modules", ".cache", `conclave-${spec.replace(/[@/]/g, "_")}`)
    const path = Path.join(cache, "node_modules", ".bin", bin)
    if (!Fs.existsSync(path)) {
      Fs.mkdirSync(cache, { recursive: true })
      const r = yield* exec(npm, ["install", "--prefix", cache, "--no-audit", "--no-fund", "--no-save", spec], {
        timeoutMs: 600_000,
        env: npmEnv()
      })
      if (r.code !== 0 || !Fs.existsSync(path)) {
        return yield* Effect.dieMessage(`could not install ${spec} from npm:\n${r.stderr}`)
      }
    }
    return path
  })

/** The `claude` executable (see `ensureTool`), checked to be the pinned version. */
export const ensureClaude = Effect.gen(function*() {
  const bin = yield* ensureTool(CLAUDE_CODE, "claude")
  const version = yield* exec(bin, ["--version"], { timeoutMs: 60_000 })
  if (version.code !== 0 || !version.stdout.includes("2.1.330")) {
    return yield* Effect.dieMessage(`${bin} --version: ${version.stdout}${version.stderr}`)
  }
  return bin
})

/** A temp HOME with `conclave` on PATH (a shim running this checkout's binary). */
export const claudeEnv = (home: string): NodeJS.ProcessEnv => {
  const bin = Path.join(home, "bin")
  Fs.mkdirSync(bin, { recursive: true })
  const shim = Path.join(bin, "conclave")
  Fs.writeFileSync(
    shim,
    `#!/bin/sh\nexec "${process.execPath}" "${Path.join(ROOT, "packages", "cli", "bin", "conclave.js")}" "$@"\n`,
    { mode: 0o755 }
  )
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    PATH: `${bin}${Path.delimiter}${process.env["PATH"] ?? ""}`,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    MCP_TIMEOUT: "10000",
    NO_COLOR: "1"
  }
  delete env["CLAUDE_CONFIG_DIR"]
  delete env["ANTHROPIC_API_KEY"]
  return env
}

/** Run `claude …` (bounded). */
export const claude = (bin: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, cwd: string) =>
  exec(bin, args, { env, cwd, timeoutMs: 120_000 })
