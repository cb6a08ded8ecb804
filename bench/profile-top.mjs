// Summarise a V8 .cpuprofile: top functions by self time and, for conclave's own code
// (packages/*/dist or src), by inclusive time. Usage: node bench/profile-top.mjs <file> [N]
import * as fs from "node:fs"

export const summarize = (file, top = 25) => {
  const prof = JSON.parse(fs.readFileSync(file, "utf8"))
  const byId = new Map()
  for (const n of prof.nodes) byId.set(n.id, n)
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const label = (n) => {
    const cf = n.callFrame
    const url = cf.url.replace(/^file:\/\//, "").replace(/^.*?\/(packages\/|node_modules\/)/, "$1")
    return `${cf.functionName || "(anonymous)"} ${url}${url ? `:${cf.lineNumber + 1}` : ""}`
  }
  const own = (n) => /\/packages\/[^/]+\/(dist|src)\//.test(n.callFrame.url)
  const group = (n) => {
    const url = n.callFrame.url
    if (url === "") {
      return n.callFrame.functionName.startsWith("(")
        ? n.callFrame.functionName
        : "native (syscalls, C++)"
    }
    const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
    if (m) return m[1]
    const p = url.match(/\/packages\/([^/]+)\//)
    if (p) return `conclave ${p[1]}`
    if (url.startsWith("node:")) return "node internals"
    return url
  }
  const groups = new Map()
  const self = new Map()
  const incl = new Map()
  let total = 0
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0
    total += dt
    let n = byId.get(prof.samples[i])
    if (n === undefined) continue
    const l = label(n)
    self.set(l, (self.get(l) ?? 0) + dt)
    const g = group(n)
    groups.set(g, (groups.get(g) ?? 0) + dt)
    const seen = new Set()
    while (n !== undefined) {
      if (own(n)) {
        const k = label(n)
        if (!seen.has(k)) {
          seen.add(k)
          incl.set(k, (incl.get(k) ?? 0) + dt)
        }
      }
      n = byId.get(parent.get(n.id))
    }
  }
  const fmt = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`)
      .join("\n")
  const idle = [...self.entries()].filter(([k]) => k.startsWith("(idle)")).reduce((a, [, v]) => a + v, 0)
  return [
    `profile: ${file}`,
    `total ${(total / 1000).toFixed(0)} ms, idle ${((100 * idle) / total).toFixed(1)}%`,
    "",
    "self time by module:",
    fmt(groups),
    "",
    "top self time (all code):",
    fmt(self),
    "",
    "top inclusive time (conclave's own functions, packages/*):",
    fmt(incl)
  ].join("\n")
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  console.log(summarize(process.argv[2], Number(process.argv[3] ?? 25)))
}
