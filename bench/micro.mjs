#!/usr/bin/env node
// In-process A/B micro-benchmark of the server's per-request CPU (handshakes, whispers), for a noisy
// machine: the same client drives a server built from this tree and one from an earlier commit's
// worktree (bench/.ab/<sha>, made by `run.mjs --ab`), alternating, and the process CPU per operation
// is compared. The client's share is the same on both sides, so the difference is the server's.
//
//   node bench/micro.mjs <sha> [--rounds 5] [--n 2000]
import * as os from "node:os"
import { abRoot, closeSession, loadServer, newKey, openSession, ROOT } from "./lib/inproc.mjs"

const args = process.argv.slice(2)
const sha = args[0]
const opt = (name, d) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : d
}
const ROUNDS = opt("--rounds", 5), N = opt("--n", 2000)
const baseRoot = abRoot(sha)
const keys = Array.from({ length: 2 }, newKey)
const load = loadServer
const open = openSession
const closed = closeSession

const measure = async (url, first) => {
  if (first) {
    await closed(await open(url, keys[0], "reg0", "alice"))
    await closed(await open(url, keys[1], "reg1", "bob"))
  }
  let t = process.cpuUsage()
  const handshakes = args.includes("--whispers-only") ? 0 : N
  for (let i = 0; i < handshakes; i++) await closed(await open(url, keys[0], `h${i % 50}`))
  let d = process.cpuUsage(t)
  const hs = (d.user + d.system) / N
  if (args.includes("--handshakes-only")) return { hs, wh: 0 }
  const a = await open(url, keys[0], "wa"), b = await open(url, keys[1], "wb")
  const target = { user: "bob", machine: "m", session: "wb" }
  const acks = () =>
    new Promise((r) => {
      let n = 0
      const on = () => {
        if (++n === N) {
          a.off("message", on)
          r()
        }
      }
      a.on("message", on)
    })
  t = process.cpuUsage()
  const done = acks()
  for (let i = 0; i < N; i++) {
    a.send(JSON.stringify({ type: "whisper", id: `w${i}`, target, payload: { kind: "plain", text: "x".repeat(100) } }))
  }
  await done
  d = process.cpuUsage(t)
  await closed(a)
  await closed(b)
  return { hs, wh: (d.user + d.system) / N }
}

// --side base|head: run one side only (to profile it)
const side = args.includes("--side") ? args[args.indexOf("--side") + 1] : null
const A = side === "head" ? null : await load(baseRoot)
const B = side === "base" ? null : await load(ROOT)
const rows = { base: [], head: [] }
for (let r = 0; r < ROUNDS; r++) {
  if (A !== null) rows.base.push(await measure(A.url, r === 0))
  if (B !== null) rows.head.push(await measure(B.url, r === 0))
}
if (A === null) rows.base = rows.head
if (B === null) rows.head = rows.base
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
for (const k of ["hs", "wh"]) {
  const b = med(rows.base.map((x) => x[k])), h = med(rows.head.map((x) => x[k]))
  console.log(
    `${k === "hs" ? "handshake" : "whisper  "} µs CPU/op (client+server): base ${b.toFixed(1)}  head ${
      h.toFixed(1)
    }  head/base ${(h / b).toFixed(2)}`
  )
}
console.log(`loadavg ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`)
process.exit(0)
