// A dispatcher driven by synthetic link events and MCP calls, capturing everything it emits.
import type { Dispatcher as D, Injection } from "@conclave/bridge"
import { Dispatcher, Ports } from "@conclave/bridge"
import type { Connection } from "@conclave/client"
import type { Frames, Names } from "@conclave/protocol"
import { Deferred, Effect, Fiber, Layer } from "effect"
import type { Scope } from "effect"

export const S1 = "ws://s1.test"
export const S2 = "ws://s2.test"
export const ME: Names.SessionPath = { user: "aaron", machine: "workstation", session: "razel" }
export const DAVID: Names.SessionPath = { user: "david", machine: "desktop", session: "main" }

export interface Sent {
  readonly frame: Connection.RequestWithoutId
  readonly reply: Deferred.Deferred<Connection.Reply, Connection.RequestError>
}

export interface FakeConnection {
  readonly connection: D.LiveConnection
  readonly sent: Array<Sent>
  /** Answer the oldest unanswered request. */
  readonly answer: (reply: Connection.Reply) => Effect.Effect<void>
  readonly reject: (error: Frames.ProtocolError) => Effect.Effect<void>
  readonly unanswered: () => Array<Sent>
}

export const fakeConnection = (
  options: {
    readonly admin?: boolean
    readonly path?: Names.SessionPath
    readonly auto?: (f: Connection.RequestWithoutId) => Connection.Reply | undefined
  } = {}
): FakeConnection => {
  const sent: Array<Sent> = []
  const answered = new Set<Sent>()
  const unanswered = () => sent.filter((s) => !answered.has(s))
  const connection: D.LiveConnection = {
    path: options.path ?? ME,
    admin: options.admin ?? false,
    request: (frame) =>
      Effect.gen(function*() {
        const reply = yield* Deferred.make<Connection.Reply, Connection.RequestError>()
        const entry = { frame, reply }
        sent.push(entry)
        const auto = options.auto?.(frame)
        if (auto !== undefined) {
          answered.add(entry)
          yield* Deferred.succeed(reply, auto)
        }
        return yield* Deferred.await(reply)
      })
  }
  const oldest = () => {
    const next = unanswered()[0]
    if (next === undefined) throw new Error("no unanswered request")
    answered.add(next)
    return next
  }
  return {
    connection,
    sent,
    unanswered,
    answer: (reply) => Effect.suspend(() => Deferred.succeed(oldest().reply, reply)).pipe(Effect.asVoid),
    reject: (error) =>
      Effect.suspend(() => Deferred.fail(oldest().reply, { _tag: "Rejected", error } as Connection.RequestError)).pipe(
        Effect.asVoid
      )
  }
}

export interface Harness {
  readonly d: D.Dispatcher
  readonly injected: Array<Injection.ChannelNotification>
  readonly listChanged: { count: number }
  readonly verdicts: Array<{ readonly requestId: string; readonly behavior: string }>
}

export const harness = (options: Partial<D.Options> = {}): Effect.Effect<Harness, never, Scope.Scope> =>
  Effect.gen(function*() {
    const injected: Array<Injection.ChannelNotification> = []
    const listChanged = { count: 0 }
    const verdicts: Array<{ requestId: string; behavior: string }> = []
    const ports = Layer.merge(
      Layer.succeed(Ports.NotificationSink, { inject: (n) => Effect.sync(() => void injected.push(n)) }),
      Layer.succeed(Ports.McpOutbound, {
        toolListChanged: Effect.sync(() => void (listChanged.count += 1)),
        permissionVerdict: (requestId, behavior) => Effect.sync(() => void verdicts.push({ requestId, behavior }))
      })
    )
    const d = yield* Dispatcher.make({
      servers: [{ url: S1, username: "aaron", machine: "workstation" }],
      handle: { name: "razel", explicit: true },
      policy: { default_permission: "notify", overrides: [] },
      loopLimit: 20,
      ...options
    }).pipe(Effect.provide(ports))
    return { d, injected, listChanged, verdicts }
  })

/** Let forked fibers run until `cond` holds (bounded). */
export const settle = (cond: () => boolean | Effect.Effect<boolean>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000; i++) {
      const c = cond()
      if (typeof c === "boolean" ? c : yield* c) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`timed out waiting for: ${what}`)
  })

/** Fork a tool call and let it run until it is blocked or done. */
export const startCall = (h: Harness, name: string, args: unknown) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(h.d.callTool(name, args))
    for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
    return fiber
  })

export const isDone = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.map(Fiber.poll(fiber), (o) => o._tag === "Some")

export const delivery = (
  channel: string,
  seq: number,
  text: string,
  origin: Frames.Origin = "agent",
  from: Names.SessionPath = DAVID
): Frames.ServerFrame => ({
  type: "channel_msg",
  channel,
  from,
  payload: { kind: "plain", text },
  seq,
  origin,
  reply_to: null
})

export const whisperFrame = (text: string, origin: Frames.Origin = "agent", from = DAVID): Frames.ServerFrame => ({
  type: "whisper",
  from,
  target: ME,
  payload: { kind: "plain", text },
  origin
})

export const toolNames = (h: Harness) => Effect.map(h.d.listTools, (ts) => ts.map((t) => t.name))
