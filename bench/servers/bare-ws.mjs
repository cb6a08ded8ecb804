// The same-runtime floor: a bare `ws` broadcast server (same `ws` as conclave), no auth, no store.
// Text protocol, one command per message:
//   S <ch>            subscribe to channel <ch>
//   N <name>          name this connection (whisper target)
//   Q                 sync: answered with "A"
//   P <ch> <payload>  deliver <payload> to every subscriber of <ch> except the sender
//   W <name> <payload> deliver <payload> to the connection named <name>
// Payloads are forwarded as the received bytes (no copy, no re-encode), as text frames.
// With the "json" mode, a message starting with "{" is a conclave-shaped frame instead
// (`channel_msg` post or `whisper`): parsed with JSON.parse, answered with an `ack`, and its delivery
// (`from`, `seq`, `origin` added) is JSON.stringify'd once and sent to every recipient — what a
// minimal JSON relay speaking conclave's wire format costs, without auth, store, Schema or Effect.
// Usage: node bare-ws.mjs [host:port] [raw|json]   (prints "bare-ws listening <host:port>" on stderr)
import * as http from "node:http"
import { WebSocketServer } from "ws"

const [host, portText] = (process.argv[2] ?? "127.0.0.1:0").split(":")
const json = process.argv[3] === "json"
let seq = 0
const channels = new Map()
const named = new Map()
const SEND_OPTS = { binary: false }

const server = http.createServer((_req, res) => {
  res.writeHead(426).end()
})
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1024 * 1024 })

wss.on("connection", (ws) => {
  const subs = []
  let name = null
  ws.on("message", (data) => {
    const op = data[0]
    if (op === 0x7b /* { */ && json) {
      const f = JSON.parse(data.toString("utf8"))
      const from = { user: "u", machine: "m", session: name ?? "anon" }
      if (f.type === "channel_msg") {
        const set = channels.get(f.channel)
        const n = ++seq
        if (set !== undefined) {
          const out = Buffer.from(JSON.stringify({
            type: "channel_msg",
            channel: f.channel,
            from,
            payload: f.payload,
            seq: n,
            origin: "agent",
            reply_to: null
          }))
          for (const peer of set) if (peer !== ws) peer.send(out, SEND_OPTS)
        }
        ws.send(JSON.stringify({ type: "ack", detail: null, seq: n }))
      } else if (f.type === "whisper") {
        const peer = named.get(f.target.session)
        if (peer !== undefined) {
          peer.send(JSON.stringify({ type: "whisper", from, target: f.target, payload: f.payload, origin: "agent" }))
        }
        ws.send(JSON.stringify({ type: "ack", detail: null, seq: null }))
      }
    } else if (op === 0x50 /* P */) {
      const sp = data.indexOf(0x20, 2)
      const ch = data.toString("latin1", 2, sp)
      const set = channels.get(ch)
      if (set === undefined) return
      const payload = data.subarray(sp + 1)
      for (const peer of set) if (peer !== ws) peer.send(payload, SEND_OPTS)
    } else if (op === 0x57 /* W */) {
      const sp = data.indexOf(0x20, 2)
      const peer = named.get(data.toString("latin1", 2, sp))
      if (peer !== undefined) peer.send(data.subarray(sp + 1), SEND_OPTS)
    } else if (op === 0x53 /* S */) {
      const ch = data.toString("latin1", 2)
      let set = channels.get(ch)
      if (set === undefined) channels.set(ch, set = new Set())
      set.add(ws)
      subs.push(set)
    } else if (op === 0x4e /* N */) {
      name = data.toString("latin1", 2)
      named.set(name, ws)
    } else if (op === 0x51 /* Q */) {
      ws.send("A")
    }
  })
  ws.on("close", () => {
    for (const set of subs) set.delete(ws)
    if (name !== null && named.get(name) === ws) named.delete(name)
  })
  ws.on("error", () => {})
})

server.listen(Number(portText), host, () => {
  const a = server.address()
  process.stderr.write(`bare-ws listening ${a.address}:${a.port}\n`)
})
const stop = () => {
  for (const ws of wss.clients) ws.terminate()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
