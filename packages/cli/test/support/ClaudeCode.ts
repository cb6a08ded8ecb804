// Test support: the real Claude Code CLI from npm, pinned, installed once into
// node_modules/.cache (it is ~380 MB and only these tests need it), run offline on a temp HOME as
// STACK.md describes (no login is needed for its plugin and MCP commands).
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { exec, npm, npmEnv, ROOT } from "./Packages.js"

export const CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.330"

const CACHE = Path.join(ROOT, "node_modules", ".cache", "conclave-claude-code-2.1.330")
const BIN = Path.join(CACHE, "node_modules", ".bin", "claude")

/** The `claude` executable, installed from npm on first use. */
export const ensureClaude = Effect.gen(function*() {
  if (!Fs.existsSync(BIN)) {
    Fs.mkdirSync(CACHE, { recursive: true })
    const r = yield* exec(
      npm,
      [
        "install",
        "--prefix",
        CACHE,
        "--no-audit",
        "--no-fund",
        "--no-save",
        CLAUDE_CODE
      ],
      { timeoutMs: 600_000, env: npmEnv() }
    )
    if (r.code !== 0 || !Fs.existsSync(BIN)) {
      return yield* Effect.dieMessage(`could not install ${CLAUDE_CODE} from npm:\n${r.stderr}`)
    }
  }
  const version = yield* exec(BIN, ["--version"], { timeoutMs: 60_000 })
  if (version.code !== 0 || !version.stdout.includes("2.1.330")) {
    return yield* Effect.dieMessage(`${BIN} --version: ${version.stdout}${version.stderr}`)
  }
  return BIN
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
