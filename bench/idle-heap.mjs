#!/usr/bin/env node
// In-process A/B of the heap an idle authenticated session holds (after GC), this tree against an
// earlier commit's build (bench/.ab/<sha>, made by `run.mjs --ab`): N sessions each join two channels
// and stay idle; heap growth ÷ N. Heap counts are the same under load, unlike timings.
//
//   node --expose-gc bench/idle-heap.mjs <sha> [--n 1000] [--snapshot DIR]
// With --snapshot, heap snapshots before and after (per side) go to DIR, for bench/heap-top.mjs.
import * as path from "node:path"
import { writeHeapSnapshot } from "node:v8"
import { abRoot, loadServer, newKey, openSession, ROOT } from "./lib/inproc.mjs"

const args = process.argv.slice(2)
const snapDir = args.includes("--snapshot") ? args[args.indexOf("--snapshot") + 1] : undefined
const N = args.includes("--n") ? Number(args[args.indexOf("--n") + 1]) : 1000
const baseRoot = abRoot(args[0])
if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc")

const key = newKey()
const open = (url, handle, register, joins) => openSession(url, key, handle, register ? "alice" : undefined, joins)
const heap = () => {
  for (let i = 0; i < 4; i++) globalThis.gc()
  return process.memoryUsage().heapUsed
}

const measure = async (root, side) => {
  const server = await loadServer(root)
  const admin = await open(server.url, "admin", true, [])
  for (const c of ["a", "b"]) {
    await new Promise((r) => {
      admin.once("message", r)
      admin.send(
        JSON.stringify({ type: "admin", id: `c${c}`, op: { kind: "create_channel", name: c, visibility: "public" } })
      )
    })
  }
  // warm up the paths, then measure
  const warm = []
  for (let i = 0; i < 200; i++) warm.push(await open(server.url, `w${i}`, false, ["a", "b"]))
  const before = heap()
  if (snapDir !== undefined) writeHeapSnapshot(path.join(snapDir, `${side}-before.heapsnapshot`))
  const held = []
  for (let i = 0; i < N; i++) held.push(await open(server.url, `s${i}`, false, ["a", "b"]))
  const after = heap()
  if (snapDir !== undefined) writeHeapSnapshot(path.join(snapDir, `${side}.heapsnapshot`))
  for (const ws of [...held, ...warm, admin]) ws.terminate()
  await server.close()
  return (after - before) / N
}
const b = await measure(baseRoot, "base")
const h = await measure(ROOT, "head")
console.log(
  `heap bytes per idle session (2 joins): base ${b.toFixed(0)}  head ${h.toFixed(0)}  head/base ${(h / b).toFixed(2)}`
)
process.exit(0)
