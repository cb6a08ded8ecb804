// Placeholder: replaced by the server work (the `serve` verb).
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"

export const serve = Command.make("serve", {}, () => Effect.logError("serve is not built yet"))
