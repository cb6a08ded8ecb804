#!/usr/bin/env node
// Start-up cost of the verbs that run often (issue 21): `conclave --version` and `conclave hook
// claude` with nothing new, side by side with a bare `node -e ''`, interleaved (node, version, hook,
// node, …) so that machine load hits all three alike. Each sample is the wall time of one spawn to
// exit. Target: each verb ≤ 2× the bare node start (median of per-round ratios).
//
//   node bench/cli-start.mjs [--rounds N]        (also `npm run bench -- --only clistart`)
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const BIN = path.join(ROOT, "packages/cli/bin/conclave.js")

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b)
  const m = Math.floor(v.length / 2)
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

const timeOne = (args, input) => {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, {
    input,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 30_000
  })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${args.join(" ")} exited ${r.status}: ${r.stderr}`)
  return { ms, stdout: r.stdout.toString() }
}

/**
 * Measure `rounds` interleaved rounds; returns medians (ms) and the medians of per-round ratios.
 * The hook runs against an empty config directory with Claude Code's UserPromptSubmit input.
 */
export const measureCliStart = (rounds = 15) => {
  if (!fs.existsSync(path.join(ROOT, "packages/cli/dist/bin.js"))) {
    throw new Error("packages/cli/dist/bin.js missing (build with `npx tsc -b packages/cli`)")
  }
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-clistart-"))
  const hookInput = JSON.stringify({ session_id: "bench", hook_event_name: "UserPromptSubmit", prompt: "hi" })
  const samples = { node: [], version: [], hook: [] }
  try {
    // one warm-up round (file cache)
    timeOne(["-e", ""])
    timeOne([BIN, "--version"])
    timeOne([BIN, "--config-dir", configDir, "hook", "claude"], hookInput)
    for (let i = 0; i < rounds; i++) {
      samples.node.push(timeOne(["-e", ""]).ms)
      const v = timeOne([BIN, "--version"])
      if (!v.stdout.startsWith("conclave ")) throw new Error(`unexpected --version output: ${v.stdout}`)
      samples.version.push(v.ms)
      const h = timeOne([BIN, "--config-dir", configDir, "hook", "claude"], hookInput)
      if (h.stdout !== "") throw new Error(`hook printed something with nothing new: ${h.stdout}`)
      samples.hook.push(h.ms)
    }
  } finally {
    fs.rmSync(configDir, { recursive: true, force: true })
  }
  const ratio = (k) => median(samples[k].map((ms, i) => ms / samples.node[i]))
  return {
    rounds,
    node_ms: median(samples.node),
    version_ms: median(samples.version),
    hook_ms: median(samples.hook),
    version_over_node: ratio("version"),
    hook_over_node: ratio("hook"),
    samples_ms: samples
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--rounds")
  const rounds = i > 0 ? Number(process.argv[i + 1]) : 15
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error("--rounds needs a positive integer")
    process.exit(64)
  }
  const r = measureCliStart(rounds)
  const f = (x) => x.toFixed(1)
  console.log(`| command | median ms | ÷ node -e '' | target |`)
  console.log(`|---|---|---|---|`)
  console.log(`| node -e '' | ${f(r.node_ms)} | 1.00 | |`)
  console.log(
    `| conclave --version | ${f(r.version_ms)} | ${r.version_over_node.toFixed(2)} | ≤ 2 ${
      r.version_over_node <= 2 ? "✅" : "❌"
    } |`
  )
  console.log(
    `| conclave hook claude (nothing new) | ${f(r.hook_ms)} | ${r.hook_over_node.toFixed(2)} | ≤ 2 ${
      r.hook_over_node <= 2 ? "✅" : "❌"
    } |`
  )
  console.log(`(${rounds} interleaved rounds; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")})`)
}
