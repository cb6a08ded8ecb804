// conclave embedded in a default Effect application: `ServerLive` composed into a program run by
// `NodeRuntime.runMain`, with Effect's defaults (tracing on, the default logger) — what an
// application that embeds conclave gets, as opposed to `conclave serve` (tracing off without an
// exporter, batched logfmt on stderr). With "traced", an in-memory tracer is installed and every span
// the server makes is recorded (a ring of the last 10 000), as an application with a tracer would.
//
//   node bench/servers/embedded.mjs <data dir | :memory:> [plain|traced]
//
// The limits are the bench's `conclave serve` flags: rate limits and per-address caps off.
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as path from "node:path"
import { ServerConfig, ServerLive, SqliteStore } from "../../packages/server/dist/index.js"

const [where = ":memory:", mode = "plain"] = process.argv.slice(2)

const RING = 10_000
const recorded = []
let ended = 0
let ids = 0
class RecordedSpan {
  _tag = "Span"
  status
  attributes = new Map()
  links = []
  sampled = true
  events = []
  constructor(name, parent, context, links, startTime, kind) {
    this.name = name
    this.parent = parent
    this.context = context
    this.links = [...links]
    this.kind = kind
    this.spanId = `span${++ids}`
    this.traceId = Option.isSome(parent) ? parent.value.traceId : `trace${ids}`
    this.status = { _tag: "Started", startTime }
  }
  end(endTime, exit) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    recorded[ended++ % RING] = this
  }
  attribute(key, value) {
    this.attributes.set(key, value)
  }
  event(name, startTime, attributes) {
    this.events.push([name, startTime, attributes])
  }
  addLinks(links) {
    this.links.push(...links)
  }
}
const memoryTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind) =>
    new RecordedSpan(name, parent, context, links, startTime, kind),
  context: (f) => f()
})

const store = where === ":memory:"
  ? SqliteStore.layerMemory
  : SqliteStore.layer({ filename: path.join(where, "conclave.db") })
const config = ServerConfig.layer({
  host: "127.0.0.1",
  port: 0,
  ratePerSecond: 0,
  maxPendingPerIp: 0,
  registerLimitPerMinute: 0
})

const program = Effect.gen(function*() {
  const { host, port } = yield* ServerLive.ServerAddress
  // one line the harness can read whatever the logger's format (the default logger may wrap)
  process.stderr.write(`embedded conclave listening ${host}:${port}\n`)
  return yield* Effect.never
})

program.pipe(
  Effect.provide(ServerLive.ServerLive.pipe(Layer.provide(config), Layer.provide(store))),
  mode === "traced" ? Effect.withTracer(memoryTracer) : (self) => self,
  NodeRuntime.runMain
)
