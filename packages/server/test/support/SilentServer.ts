/**
 * A TCP server that accepts connections and never answers (a backend that hangs), on a free loopback
 * port; its sockets are destroyed when the scope closes.
 */
import { Effect, type Scope } from "effect"
import * as net from "node:net"

export const silentServer: Effect.Effect<number, never, Scope.Scope> = Effect.suspend(() => {
  const held = new Set<net.Socket>()
  const silent = net.createServer((socket) => {
    held.add(socket)
    socket.on("error", () => socket.destroy())
  })
  return Effect.acquireRelease(
    Effect.async<number>((resume) => {
      silent.listen(0, "127.0.0.1", () => resume(Effect.succeed((silent.address() as net.AddressInfo).port)))
    }),
    () =>
      Effect.async<void>((resume) => {
        silent.close(() => resume(Effect.void))
        for (const socket of held) socket.destroy()
      })
  )
})
