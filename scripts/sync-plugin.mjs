#!/usr/bin/env node
// Keep the Claude Code plugin (plugins/conclave) in step with the CLI: its version is the `conclave`
// package's, and its skill is `conclave skill show` (generated from the command tree). Run after a
// build: `npm run plugin:sync` (`npm run version-packages` runs it after `changeset version`).
// `--check` changes nothing and exits 1 when either is out of date.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const check = process.argv.includes("--check")
const manifestPath = path.join(root, "plugins/conclave/.claude-plugin/plugin.json")
const skillPath = path.join(root, "plugins/conclave/skills/conclave/SKILL.md")

const version = JSON.parse(fs.readFileSync(path.join(root, "packages/cli/package.json"), "utf8")).version
const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"))
const skill = spawnSync(process.execPath, [path.join(root, "packages/cli/bin/conclave.js"), "skill", "show"], {
  encoding: "utf8",
  env: { ...process.env, NO_COLOR: "1" }
})
if (skill.status !== 0) {
  console.error(`conclave skill show failed (build first: npx tsc -b):\n${skill.stderr}`)
  process.exit(1)
}
const stale = []
if (manifest.version !== version) stale.push(`plugin.json version ${manifest.version} ≠ conclave ${version}`)
if (!fs.existsSync(skillPath) || fs.readFileSync(skillPath, "utf8") !== skill.stdout) {
  stale.push("SKILL.md ≠ `conclave skill show`")
}
if (check) {
  if (stale.length > 0) {
    console.error(`plugins/conclave is out of date (${stale.join("; ")}): run \`npm run plugin:sync\``)
    process.exit(1)
  }
  process.exit(0)
}
fs.writeFileSync(manifestPath, JSON.stringify({ ...manifest, version }, null, 2) + "\n")
fs.writeFileSync(skillPath, skill.stdout)
console.log(stale.length === 0 ? "plugins/conclave is up to date" : `plugins/conclave updated: ${stale.join("; ")}`)
