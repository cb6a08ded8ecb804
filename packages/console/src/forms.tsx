/** The console's forms: one-field forms (new channel, new whisper) and the message composer. */
import { useEffect, useRef, useState } from "preact/hooks"
import { errorText, excerpt } from "./common.js"
import { type ConsoleState, type Message, parsePath } from "./state.js"

/**
 * A one-field form: `submit` takes the trimmed value and answers the problem to show, or a promise of
 * it; the field is cleared when there is none.
 */
const InlineForm = (props: {
  readonly label: string
  readonly placeholder: string
  readonly button: string
  readonly submit: (value: string) => string | undefined | Promise<string | undefined>
}) => {
  const [value, setValue] = useState("")
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const settle = (problem: string | undefined) => {
    setProblem(problem)
    if (problem === undefined) setValue("")
  }
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault()
        if (value.trim().length === 0) return
        const outcome = props.submit(value.trim())
        if (outcome instanceof Promise) void outcome.then(settle)
        else settle(outcome)
      }}
    >
      <input
        aria-label={props.label}
        placeholder={props.placeholder}
        value={value}
        onInput={(e) => setValue(e.currentTarget.value)}
      />
      <button type="submit">{props.button}</button>
      {problem !== undefined ? <p class="form-error">{problem}</p> : null}
    </form>
  )
}

export const CreateChannel = (props: { readonly state: ConsoleState }) => (
  <InlineForm
    label="new channel name"
    placeholder="new channel"
    button="Create"
    submit={(name) =>
      props.state.createChannel(name, "public").then(() => undefined, (error: unknown) => errorText(error))}
  />
)

export const NewWhisper = (props: { readonly state: ConsoleState }) => (
  <InlineForm
    label="whisper to"
    placeholder="user/machine/session"
    button="Whisper"
    submit={(target) => {
      const path = parsePath(target)
      if (path === undefined) return "a whisper goes to a user/machine/session path"
      props.state.select({ kind: "whisper", key: props.state.thread(path).key })
      return undefined
    }}
  />
)

export const Composer = (props: {
  readonly placeholder: string
  readonly replyTo: Message | undefined
  readonly onCancelReply: () => void
  readonly disabled: boolean
  readonly send: (text: string, replyTo: Message | undefined) => Promise<void>
}) => {
  const [text, setText] = useState("")
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const input = useRef<HTMLTextAreaElement>(null)
  useEffect(() => {
    if (props.replyTo !== undefined) input.current?.focus()
  }, [props.replyTo])
  const submit = () => {
    const body = text
    if (body.trim().length === 0) return
    props.send(body, props.replyTo).then(() => {
      setText("")
      setProblem(undefined)
    }, (error: unknown) => setProblem(errorText(error)))
  }
  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault()
        submit()
      }}
    >
      {props.replyTo !== undefined
        ? (
          <div class="replying">
            Replying to #{props.replyTo.seq}: {excerpt(props.replyTo.text)}
            <button type="button" class="link" onClick={props.onCancelReply}>cancel</button>
          </div>
        )
        : null}
      {problem !== undefined ? <p class="form-error" role="alert">{problem}</p> : null}
      <div class="composer-row">
        <textarea
          ref={input}
          aria-label={props.placeholder}
          placeholder={props.placeholder}
          value={text}
          disabled={props.disabled}
          rows={2}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault()
              submit()
            } else if (e.key === "Escape") {
              props.onCancelReply()
            }
          }}
        />
        <button type="submit" disabled={props.disabled}>Send</button>
      </div>
    </form>
  )
}
