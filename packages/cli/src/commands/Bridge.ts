// Placeholder: replaced by the bridge work (the `bridge` verb).
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"

export const bridge = Command.make("bridge", {}, () => Effect.logError("bridge is not built yet"))
