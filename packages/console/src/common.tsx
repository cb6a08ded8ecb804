/** What the views share: how an error, a time and an origin read, and a short excerpt of a body. */
import type * as Frames from "@conclave/protocol/Frames"
import { describe, Refused } from "./wire.js"

export const errorText = (error: unknown) =>
  error instanceof Refused ? describe(error.error) : error instanceof Error ? error.message : String(error)

export const time = (ts: number) => {
  const d = new Date(ts)
  return { short: d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), full: d.toISOString() }
}

export const OriginBadge = (props: { readonly origin: Frames.Origin }) => (
  <span class={`badge badge-${props.origin}`}>{props.origin}</span>
)

export const excerpt = (text: string) => (text.length > 80 ? `${text.slice(0, 80)}…` : text)
