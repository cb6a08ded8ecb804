/**
 * The JSON Schema document of the whole protocol (D-1), for clients in other languages.
 *
 * @since 0.1.0
 */
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import { ClientFrame, ServerFrame } from "./Frames.js"

/** @since 0.1.0 @category schemas */
export const ProtocolSchema = Schema.Struct({
  client_frame: ClientFrame,
  server_frame: ServerFrame
}).annotations({
  title: "conclave protocol v1",
  description: "Frames of the conclave WebSocket protocol: one JSON object per WebSocket message. " +
    "Validate a client→server message against #/$defs/ClientFrame and a server→client message against #/$defs/ServerFrame."
})

/** The document as committed in `protocol.schema.json`. @since 0.1.0 @category schemas */
export const document = (): string => {
  // Receivers ignore unknown fields (and D-2 lets a client send `from` on a post), so the document
  // allows additional properties rather than forbidding what a real decoder accepts.
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  const root = JSONSchema.fromAST(ProtocolSchema.ast, { definitions, additionalPropertiesStrategy: "allow" })
  const out = { $schema: "http://json-schema.org/draft-07/schema#", $defs: definitions, ...root }
  return JSON.stringify(out, null, 2) + "\n"
}
