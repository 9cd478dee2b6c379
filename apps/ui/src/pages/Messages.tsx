/**
 * A queue's live messages: those in one state (ready, delayed or leased), oldest first, a page at
 * a time, with payload previews, priority, deliveries, when each is available and its group; one
 * message looked up by id; and on each, cancel or (delayed) retry now, after confirmation.
 */
import { useState } from "preact/hooks"
import { call } from "../Api.js"
import {
  destructive,
  matchesFilter,
  notify,
  Pager,
  pageSize,
  preview,
  Time,
  usePages,
  usePoll
} from "../Ui.js"

/** The states a live message is listed by, as the API names them, with the page's words for them. */
const states = [
  ["queued", "Ready"],
  ["delayed", "Delayed"],
  ["leased", "Leased (in flight)"]
] as const

type State = (typeof states)[number][0]

/** What a message's `availableAt` means in each state. */
const availableLabel: Record<State, string> = {
  queued: "Ready since",
  delayed: "Available at",
  leased: "Lease ends"
}

interface Live {
  readonly id: number
  readonly state: State
}

/**
 * Cancel (archived as cancelled, a running handler interrupted) and, for a delayed one, retry now;
 * `after` runs when either was done, `cancelled` (when given) instead of it after a cancel.
 */
const MessageActions = (props: {
  readonly name: string
  readonly message: Live
  readonly after: () => void
  readonly cancelled?: () => void
}) => {
  const { name, message } = props
  return (
    <div class="row-actions">
      {message.state === "delayed" && (
        <button
          type="button"
          onClick={() =>
            destructive(
              `Make message ${message.id} ready now instead of at its scheduled time?`,
              "Retry now",
              () =>
                call((client) =>
                  client.queues.updateMessage({ path: { name, id: message.id }, payload: { delay: 0 } })
                ),
              () => `Message ${message.id} is ready.`,
              props.after
            )
          }
        >
          Retry now
        </button>
      )}
      <button
        type="button"
        class="danger"
        onClick={() =>
          destructive(
            `Cancel message ${message.id}? It is archived as cancelled${message.state === "leased" ? " and its running handler is interrupted" : ""}.`,
            "Cancel message",
            () => call((client) => client.queues.cancelMessage({ path: { name, id: message.id } })),
            (result) => `Message ${message.id}: ${result.outcome}.`,
            props.cancelled ?? props.after
          )
        }
      >
        Cancel message
      </button>
    </div>
  )
}

/** The queue's messages in the chosen state, oldest first; "Next page" continues after the last id. */
export const Messages = (props: { readonly name: string; readonly after: () => void }) => {
  const { name } = props
  const [state, setState] = useState<State>("queued")
  const [filter, setFilter] = useState("")
  const pages = usePages()
  const list = usePoll(
    () =>
      call((client) =>
        client.queues.listMessages({
          path: { name },
          urlParams: { state, after: pages.cursor, limit: pageSize + 1 }
        })
      ),
    `messages:${name}:${state}:${pages.cursor ?? ""}`
  )
  const messages = list.value?.messages ?? []
  const page = messages.slice(0, pageSize)
  const needle = filter.trim().toLowerCase()
  const shown = page.filter((message) => matchesFilter(message, needle))
  const refresh = () => {
    list.reload()
    props.after()
  }
  return (
    <div>
      <div class="toolbar">
        <label>
          State{" "}
          <select
            value={state}
            onChange={(e) => {
              const chosen = states.find(([value]) => value === e.currentTarget.value)
              if (chosen !== undefined) {
                setState(chosen[0])
                pages.reset()
              }
            }}
          >
            {states.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Filter <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
      </div>
      {list.error !== undefined && <p class="error">{list.error}</p>}
      <div class="scroll">
        <table class="messages" aria-label="Messages" data-state={state}>
          <thead>
            <tr>
              <th scope="col" class="n">
                Id
              </th>
              <th scope="col">Payload</th>
              <th scope="col" class="n">
                Priority
              </th>
              <th scope="col" class="n">
                Deliveries
              </th>
              <th scope="col">{availableLabel[state]}</th>
              <th scope="col">Group</th>
              <th scope="col">Action</th>
            </tr>
          </thead>
          <tbody>
            {list.value !== undefined && shown.length === 0 && (
              <tr>
                <td colSpan={7} class="muted">
                  {needle === "" ? "No messages in this state." : "Nothing matches the filter."}
                </td>
              </tr>
            )}
            {shown.map((message) => (
              <tr key={message.id} data-message={message.id}>
                <td class="n mono">{message.id}</td>
                <td>
                  <pre class="payload">{preview(message.payload)}</pre>
                  {message.lastError !== null && (
                    <p class="error small last-error">last error: {message.lastError}</p>
                  )}
                </td>
                <td class="n">{message.priority}</td>
                <td class="n">
                  {message.deliveries} of {message.maxDeliveries}
                </td>
                <td>
                  <Time at={message.availableAt.epochMillis} />
                </td>
                <td class="mono">{message.group ?? <span class="muted">—</span>}</td>
                <td>
                  <MessageActions name={name} message={message} after={refresh} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        pages={pages}
        next={messages.length > pageSize ? page[page.length - 1]?.id : undefined}
        backLabel="Previous page"
        forwardLabel="Next page"
      />
    </div>
  )
}

/** A message by id: its state, progress and payload; cancel it, or make a delayed one visible now. */
export const FindMessage = (props: { readonly name: string; readonly after: () => void }) => {
  const { name } = props
  const [text, setText] = useState("")
  const [id, setId] = useState<number | undefined>(undefined)
  const found = usePoll(
    () =>
      id === undefined
        ? Promise.resolve({ ok: true as const, value: undefined })
        : call((client) => client.queues.getMessage({ path: { name, id } })),
    `message:${name}:${id ?? ""}`
  )
  const message = found.value
  return (
    <div>
      <form
        class="toolbar"
        onSubmit={(event) => {
          event.preventDefault()
          const parsed = Number(text)
          if (Number.isInteger(parsed) && parsed > 0) setId(parsed)
          else notify("refused", "A message id is a positive whole number.")
        }}
      >
        <label>
          Message id{" "}
          <input inputMode="numeric" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <button type="submit">Find</button>
      </form>
      {id !== undefined && found.error !== undefined && <p class="error">{found.error}</p>}
      {message !== undefined && (
        <div class="card">
          <dl class="facts">
            <dt>Id</dt>
            <dd class="mono">{message.id}</dd>
            <dt>State</dt>
            <dd>{message.state}</dd>
            <dt>Deliveries</dt>
            <dd>
              {message.deliveries} of {message.maxDeliveries}
            </dd>
            <dt>Priority</dt>
            <dd>{message.priority}</dd>
            <dt>Group</dt>
            <dd class="mono">{message.group ?? "—"}</dd>
            <dt>Enqueued</dt>
            <dd>
              <Time at={message.enqueuedAt.epochMillis} />
            </dd>
            <dt>{availableLabel[message.state]}</dt>
            <dd>
              <Time at={message.availableAt.epochMillis} />
            </dd>
            <dt>Last error</dt>
            <dd>{message.lastError ?? "—"}</dd>
          </dl>
          <pre class="payload">{preview(message.payload)}</pre>
          <div class="actions">
            <MessageActions
              name={name}
              message={message}
              after={() => {
                found.reload()
                props.after()
              }}
              cancelled={() => {
                setId(undefined)
                props.after()
              }}
            />
          </div>
        </div>
      )}
    </div>
  )
}
