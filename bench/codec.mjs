#!/usr/bin/env node
// Micro-benchmark of client frame decoding (Codec.decodeClientFrame), µs per decode.
//
//   npx tsc -b packages/protocol && node bench/codec.mjs [--n 200000]
//
// Decodes realistic `channel_msg` (200-byte body) and `whisper` frames handed over as Buffers, the
// way `ws` delivers them. When the build exposes the pure-Schema decode, it is measured too.
import { Codec } from "../packages/protocol/dist/index.js"

const args = process.argv.slice(2)
const at = args.indexOf("--n")
const N = at >= 0 ? Number(args[at + 1]) : 200_000

const body = "The quick brown fox jumps over the lazy dog; agents coordinate through channels. ".repeat(3).slice(0, 200)
const frames = {
  channel_msg: Array.from({ length: 1000 }, (_, i) =>
    Buffer.from(JSON.stringify({
      type: "channel_msg",
      id: `req-${i}`,
      channel: "general",
      payload: { kind: "plain", text: `${i} ${body}`.slice(0, 200) },
      reply_to: i % 3 === 0 ? i : null
    }))),
  whisper: Array.from({ length: 1000 }, (_, i) =>
    Buffer.from(JSON.stringify({
      type: "whisper",
      id: `req-${i}`,
      target: { user: "alice", machine: "laptop", session: `s${i % 10}` },
      payload: { kind: "plain", text: `${i} ${body}`.slice(0, 200) }
    })))
}

const measure = (decode, inputs) => {
  let sink = 0
  const run = (n) => {
    for (let i = 0; i < n; i++) {
      const r = decode(inputs[i % inputs.length])
      if (r._tag !== "Right") throw new Error(`refused: ${r.left.detail}`)
      sink += r.right.type.length
    }
  }
  run(Math.min(N, 20_000)) // warm-up
  const start = process.hrtime.bigint()
  run(N)
  const ns = Number(process.hrtime.bigint() - start)
  return { us: ns / 1000 / N, sink }
}

const decoders = [["decodeClientFrame", Codec.decodeClientFrame]]
if (typeof Codec.decodeClientFrameSchema === "function") {
  decoders.push(["decodeClientFrameSchema (pure Schema)", Codec.decodeClientFrameSchema])
}
for (const [kind, inputs] of Object.entries(frames)) {
  for (const [name, decode] of decoders) {
    const { us } = measure(decode, inputs)
    console.log(`${kind.padEnd(12)} ${name.padEnd(40)} ${us.toFixed(2)} µs/decode (n=${N})`)
  }
}
