// Summarise a V8 heap snapshot: the object kinds that take the most shallow size, with counts, and
// (given the number of sessions the server held) bytes per session for kinds that scale with them.
// Usage: node bench/heap-top.mjs <file.heapsnapshot> [sessions] [N] [baseline.heapsnapshot]
import * as fs from "node:fs"

const groupsOf = (file) => {
  const snap = JSON.parse(fs.readFileSync(file, "utf8"))
  const f = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = f.length
  const iType = f.indexOf("type")
  const iName = f.indexOf("name")
  const iSize = f.indexOf("self_size")
  const nodes = snap.nodes
  const groups = new Map()
  let total = 0
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]]
    const size = nodes[i + iSize]
    total += size
    let name = type
    if (type === "object" || type === "closure" || type === "native") name = `${type} ${snap.strings[nodes[i + iName]]}`
    const g = groups.get(name)
    if (g === undefined) groups.set(name, { count: 1, size })
    else {
      g.count++
      g.size += size
    }
  }
  return { groups, total }
}

/** Kinds by shallow size; with `baseFile`, by growth from that snapshot (what the sessions added). */
export const heapTop = (file, sessions = 0, top = 30, baseFile = null) => {
  const { groups, total } = groupsOf(file)
  let base = null
  if (baseFile !== null) {
    base = groupsOf(baseFile)
    for (const [name, g] of groups) {
      const b = base.groups.get(name)
      if (b !== undefined) {
        g.size -= b.size
        g.count -= b.count
      }
    }
  }
  const rows = [...groups.entries()].sort((a, b) => b[1].size - a[1].size).slice(0, top)
  const lines = [
    `heap snapshot: ${file}${base ? ` minus ${baseFile}` : ""}`,
    `total shallow size ${(total / 2 ** 20).toFixed(1)} MiB${
      base ? `, growth ${((total - base.total) / 2 ** 20).toFixed(1)} MiB` : ""
    }${sessions ? `, ${sessions} sessions held` : ""}`,
    "",
    `${"size".padStart(10)} ${"count".padStart(9)} ${
      sessions ? "B/session".padStart(10) + " " + "n/session".padStart(9) : ""
    }  kind`
  ]
  for (const [name, g] of rows) {
    const per = sessions
      ? `${(g.size / sessions).toFixed(0).padStart(10)} ${(g.count / sessions).toFixed(1).padStart(9)}`
      : ""
    lines.push(`${String(g.size).padStart(10)} ${String(g.count).padStart(9)} ${per}  ${name.slice(0, 90)}`)
  }
  return lines.join("\n")
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  console.log(
    heapTop(process.argv[2], Number(process.argv[3] ?? 0), Number(process.argv[4] ?? 30), process.argv[5] ?? null)
  )
}
