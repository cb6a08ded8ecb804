#!/usr/bin/env node
// Bytes allocated per handshake by the server, by function (V8's sampling heap profiler, counting
// objects already collected too): a figure that does not move with the machine's load, unlike CPU
// time. The client runs in the same process; its share is the same on both sides.
//
//   node bench/alloc.mjs <sha> [--n 2000] [--top 30]
import * as inspector from "node:inspector/promises"
import { abRoot, closeSession, loadServer, newKey, openSession, ROOT } from "./lib/inproc.mjs"

const args = process.argv.slice(2)
const sha = args[0]
const opt = (name, d) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : d
}
const N = opt("--n", 2000), TOP = opt("--top", 30)
const baseRoot = abRoot(sha)
const keys = Array.from({ length: 2 }, newKey)
const load = loadServer
const open = openSession
const closed = closeSession

const session = new inspector.Session()
session.connect()
const label = (n) =>
  `${n.callFrame.functionName || "(anonymous)"} ${
    n.callFrame.url.replace(/^.*?\/(packages|node_modules)\//, "$1/").replace(/bench\/\.ab\/[0-9a-f]+\//, "")
  }:${n.callFrame.lineNumber + 1}`
const sample = async (url) => {
  for (let i = 0; i < 300; i++) await closed(await open(url, keys[0], `w${i % 50}`))
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  for (let i = 0; i < N; i++) await closed(await open(url, keys[0], `h${i % 50}`))
  const { profile } = await session.post("HeapProfiler.stopSampling")
  const bySite = new Map()
  let total = 0
  const walk = (n) => {
    total += n.selfSize
    if (n.selfSize > 0) bySite.set(label(n), (bySite.get(label(n)) ?? 0) + n.selfSize)
    for (const c of n.children) walk(c)
  }
  walk(profile.head)
  return { total: total / N, bySite }
}
const A = await load(baseRoot)
const B = await load(ROOT)
await closed(await open(A.url, keys[0], "reg0", "alice"))
await closed(await open(B.url, keys[0], "reg0", "alice"))
const a = await sample(A.url)
const b = await sample(B.url)
console.log(
  `bytes allocated per handshake (client+server): base ${a.total.toFixed(0)}  head ${b.total.toFixed(0)}  head/base ${
    (b.total / a.total).toFixed(2)
  }`
)
const sites = new Set([...a.bySite.keys(), ...b.bySite.keys()])
const rows = [...sites].map((s) => [s, (a.bySite.get(s) ?? 0) / N, (b.bySite.get(s) ?? 0) / N])
rows.sort((x, y) => Math.max(y[1], y[2]) - Math.max(x[1], x[2]))
console.log("   base    head  site")
for (const [s, x, y] of rows.slice(0, TOP)) console.log(`${x.toFixed(0).padStart(7)} ${y.toFixed(0).padStart(7)}  ${s}`)
process.exit(0)
