/** Whispers with one session, as a direct-message thread. */
import { OriginBadge, time } from "./common.js"
import { Composer } from "./forms.js"
import { MessageList } from "./MessageList.js"
import { type ConsoleState, pathKey, type ThreadState, type WhisperMessage } from "./state.js"

const whisperKey = (m: WhisperMessage) => m.key

export const WhisperView = (props: { readonly state: ConsoleState; readonly thread: ThreadState }) => {
  const { state, thread } = props
  return (
    <section class="channel" aria-label={`whispers with ${thread.key}`}>
      <header class="channel-header">
        <h1>{thread.key}</h1>
        <span class="visibility">whispers</span>
      </header>
      <div class="channel-body">
        <MessageList
          key={thread.key}
          messages={thread.messages}
          keyOf={whisperKey}
          render={(m) => {
            const t = time(m.ts)
            return (
              <li class={`message origin-${m.origin} ${m.mine ? "mine" : ""}`} key={m.key}>
                <div class="meta">
                  <span class="from">{m.mine ? "you" : pathKey(m.from)}</span>
                  <OriginBadge origin={m.origin} />
                  <time dateTime={t.full} title={t.full}>{t.short}</time>
                </div>
                <div class="body">{m.text}</div>
              </li>
            )
          }}
        />
      </div>
      <Composer
        placeholder={`Whisper to ${thread.key}`}
        replyTo={undefined}
        onCancelReply={() => undefined}
        disabled={false}
        send={(text) => state.whisper(thread.peer, text)}
      />
    </section>
  )
}
