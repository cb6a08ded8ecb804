/** Moderation of a channel for admins: kick, ban, unban, invite. */
import type * as Frames from "@conclave/protocol/Frames"
import { useState } from "preact/hooks"
import { errorText } from "./common.js"
import type { ConsoleState } from "./state.js"

export const AdminPanel = (props: { readonly state: ConsoleState; readonly channel: string }) => {
  const [target, setTarget] = useState("")
  const [result, setResult] = useState<string | undefined>(undefined)
  const run = (op: Frames.AdminOp, done: (reply: string) => string) =>
    props.state.admin_(op).then((reply) => {
      setResult(done(reply.type === "invite_token" ? reply.token : reply.type))
    }, (error: unknown) => setResult(errorText(error)))
  return (
    <details class="admin">
      <summary>Moderate #{props.channel}</summary>
      <div class="admin-row">
        <input
          aria-label="user or session path"
          placeholder="user or user/machine/session"
          value={target}
          onInput={(e) => setTarget(e.currentTarget.value)}
        />
        <button
          onClick={() => run({ kind: "kick", channel: props.channel, target: target.trim() }, () => `kicked ${target}`)}
        >
          Kick
        </button>
        <button
          onClick={() => run({ kind: "ban", channel: props.channel, user: target.trim() }, () => `banned ${target}`)}
        >
          Ban
        </button>
        <button
          onClick={() =>
            run({ kind: "unban", channel: props.channel, user: target.trim() }, () => `unbanned ${target}`)}
        >
          Unban
        </button>
        <button
          onClick={() =>
            run(
              { kind: "invite_create", channel: props.channel, uses: 1, expires_in_secs: 86_400 },
              (token) => `invite token (one use, 24 h): ${token}`
            )}
        >
          Invite
        </button>
      </div>
      {result !== undefined ? <p class="admin-result">{result}</p> : null}
    </details>
  )
}
