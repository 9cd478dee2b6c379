/**
 * One queue: its messages counted by state; its messages by state (see `Messages`); its dead
 * letters and archive, a page at a time, with a filter, payload previews, and requeue or delete of
 * one or the selected dead letters; a message looked up by id; its schedules; its settings, editable.
 */
import * as Duration from "effect/Duration"
import { useState } from "preact/hooks"
import { call } from "../Api.js"
import {
  destructive,
  duration,
  matchesFilter,
  notify,
  num,
  Pager,
  pageSize,
  preview,
  Stat,
  Time,
  usePages,
  usePoll
} from "../Ui.js"
import { FindMessage, Messages } from "./Messages.js"

type Tab = "messages" | "dead" | "archive" | "message" | "schedules" | "settings"

const tabs: ReadonlyArray<readonly [Tab, string]> = [
  ["messages", "Messages"],
  ["dead", "Dead letters"],
  ["archive", "Archive"],
  ["message", "Find a message"],
  ["schedules", "Schedules"],
  ["settings", "Settings"]
]

/** One queue's page (`#/queues/NAME`). */
export const Queue = ({ name }: { readonly name: string }) => {
  const [tab, setTab] = useState<Tab>("messages")
  const metrics = usePoll(
    () => call((client) => client.queues.metrics({ path: { name } })),
    `metrics:${name}`
  )
  const counts = metrics.value
  return (
    <section aria-labelledby="queue-title">
      <p class="crumbs">
        <a href="#/">Overview</a> / queue
      </p>
      <h1 id="queue-title">{name}</h1>
      {metrics.error !== undefined && <p class="error">{metrics.error}</p>}
      {counts !== undefined && (
        <div class="stats" data-testid="queue-counts">
          <Stat label="ready">
            <span data-count="ready">{num(counts.depth)}</span>
          </Stat>
          <Stat label="delayed">
            <span data-count="delayed">{num(counts.delayed)}</span>
          </Stat>
          <Stat label="in flight">
            <span data-count="inFlight">{num(counts.inFlight)}</span>
          </Stat>
          <Stat label="dead">
            <span data-count="dead">{num(counts.dead)}</span>
          </Stat>
          <Stat label="archived">
            <span data-count="archived">{num(counts.archived)}</span>
          </Stat>
          <Stat label="oldest">
            {counts.oldestMessageAgeMs === null ? "—" : duration(counts.oldestMessageAgeMs)}
          </Stat>
        </div>
      )}
      <div class="tabs" role="tablist" aria-label="Queue sections">
        {tabs.map(([id, label]) => (
          <button
            type="button"
            role="tab"
            key={id}
            id={`tab-${id}`}
            aria-selected={tab === id}
            aria-controls={`panel-${id}`}
            onClick={() => setTab(id)}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === "messages" && <Messages name={name} after={metrics.reload} />}
        {tab === "dead" && <Archived name={name} dead={true} after={metrics.reload} />}
        {tab === "archive" && <Archived name={name} dead={false} after={metrics.reload} />}
        {tab === "message" && <FindMessage name={name} after={metrics.reload} />}
        {tab === "schedules" && <Schedules name={name} />}
        {tab === "settings" && <Settings name={name} />}
      </div>
    </section>
  )
}

/** Dead letters (`dead`) or archived messages, newest first, a page at a time. */
const Archived = (props: { readonly name: string; readonly dead: boolean; readonly after: () => void }) => {
  const { name, dead } = props
  const pages = usePages()
  const [filter, setFilter] = useState("")
  const [selected, setSelected] = useState<ReadonlySet<number>>(new Set())
  const before = pages.cursor
  const list = usePoll(
    () =>
      call((client) =>
        dead
          ? client.queues.deadLetters({ path: { name }, urlParams: { limit: pageSize + 1, before } })
          : client.queues.archive({ path: { name }, urlParams: { dead: false, limit: pageSize + 1, before } })
      ),
    `${dead ? "dead" : "archive"}:${name}:${before ?? ""}`
  )
  const messages = list.value?.messages ?? []
  const page = messages.slice(0, pageSize)
  const needle = filter.trim().toLowerCase()
  const shown = page.filter((message) => matchesFilter(message, needle))
  const done = () => {
    setSelected(new Set())
    list.reload()
    props.after()
  }
  const some = (ids: ReadonlyArray<number>, one: string, many: string) =>
    ids.length === 1 ? `${one} ${ids[0]}` : `${ids.length} ${many}`
  const requeue = (ids: ReadonlyArray<number>) =>
    destructive(
      `Requeue ${some(ids, "dead letter", "dead letters")} of ${name}? ${ids.length === 1 ? "It becomes" : "They become"} ready again with deliveries reset.`,
      "Requeue",
      () => call((client) => client.queues.requeueDead({ path: { name }, payload: { ids } })),
      (moved) => `Requeued ${moved.ids.length} message${moved.ids.length === 1 ? "" : "s"}.`,
      done
    )
  const remove = (ids: ReadonlyArray<number>) =>
    destructive(
      `Delete ${some(ids, "dead letter", "dead letters")} of ${name} for good? This cannot be undone.`,
      "Delete",
      () => call((client) => client.queues.deleteDead({ path: { name }, payload: { ids } })),
      (deleted) => `Deleted ${deleted.ids.length} dead letter${deleted.ids.length === 1 ? "" : "s"}.`,
      done
    )
  const toggle = (id: number) => {
    const next = new Set(selected)
    if (next.has(id)) next.delete(id)
    else next.add(id)
    setSelected(next)
  }
  const allShown = shown.length > 0 && shown.every((message) => selected.has(message.id))
  const toggleShown = () => {
    const next = new Set(selected)
    for (const message of shown) {
      if (allShown) next.delete(message.id)
      else next.add(message.id)
    }
    setSelected(next)
  }
  const columns = dead ? 7 : 5
  return (
    <div>
      <div class="toolbar">
        <label>
          Filter <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        {dead && (
          <>
            <button type="button" disabled={selected.size === 0} onClick={() => requeue([...selected])}>
              Requeue selected ({selected.size})
            </button>
            <button
              type="button"
              class="danger"
              disabled={selected.size === 0}
              onClick={() => remove([...selected])}
            >
              Delete selected ({selected.size})
            </button>
          </>
        )}
      </div>
      {list.error !== undefined && <p class="error">{list.error}</p>}
      <div class="scroll">
        <table class="messages" aria-label={dead ? "Dead letters" : "Archived messages"}>
          <thead>
            <tr>
              {dead && (
                <th scope="col">
                  <input
                    type="checkbox"
                    aria-label="select every dead letter shown"
                    checked={allShown}
                    disabled={shown.length === 0}
                    onChange={toggleShown}
                  />
                </th>
              )}
              <th scope="col" class="n">
                Id
              </th>
              <th scope="col">Payload</th>
              <th scope="col" class="n">
                Deliveries
              </th>
              <th scope="col">{dead ? "Last error" : "Outcome"}</th>
              <th scope="col">Archived</th>
              {dead && <th scope="col">Action</th>}
            </tr>
          </thead>
          <tbody>
            {list.value !== undefined && shown.length === 0 && (
              <tr>
                <td colSpan={columns} class="muted">
                  {needle === ""
                    ? dead
                      ? "No dead letters."
                      : "Nothing archived."
                    : "Nothing matches the filter."}
                </td>
              </tr>
            )}
            {shown.map((message) => (
              <tr key={message.id} data-message={message.id}>
                {dead && (
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`select message ${message.id}`}
                      checked={selected.has(message.id)}
                      onChange={() => toggle(message.id)}
                    />
                  </td>
                )}
                <td class="n mono">{message.id}</td>
                <td>
                  <pre class="payload">{preview(message.payload)}</pre>
                </td>
                <td class="n">{message.deliveries}</td>
                <td>
                  {dead ? (message.lastError ?? "—") : message.cancelled ? "cancelled" : "acknowledged"}
                </td>
                <td>
                  <Time at={message.archivedAt.epochMillis} />
                </td>
                {dead && (
                  <td>
                    <div class="row-actions">
                      <button type="button" onClick={() => requeue([message.id])}>
                        Requeue
                      </button>
                      <button type="button" class="danger" onClick={() => remove([message.id])}>
                        Delete
                      </button>
                    </div>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        pages={pages}
        next={messages.length > pageSize ? page[page.length - 1]?.id : undefined}
        backLabel="Newer"
        forwardLabel="Older"
      />
    </div>
  )
}

/** The schedules that send to this queue: cron or interval, next and last tick, paused or not. */
const Schedules = ({ name }: { readonly name: string }) => {
  const list = usePoll(
    () => call((client) => client.schedules.list({ urlParams: { queue: name } })),
    `schedules:${name}`
  )
  return (
    <div class="scroll">
      {list.error !== undefined && <p class="error">{list.error}</p>}
      <table aria-label="Schedules">
        <thead>
          <tr>
            <th scope="col">Schedule</th>
            <th scope="col">When</th>
            <th scope="col">Next tick</th>
            <th scope="col">Last tick</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {list.value?.schedules.length === 0 && (
            <tr>
              <td colSpan={5} class="muted">
                No schedules send to this queue.
              </td>
            </tr>
          )}
          {list.value?.schedules.map((schedule) => (
            <tr key={schedule.name} data-schedule={schedule.name}>
              <th scope="row">{schedule.name}</th>
              <td class="mono">
                {schedule.cron === null
                  ? `every ${duration(schedule.everyMs ?? 0)}`
                  : `${schedule.cron}${schedule.timeZone === null ? "" : ` (${schedule.timeZone})`}`}
              </td>
              <td>
                <Time at={schedule.nextAt} />
              </td>
              <td>
                <Time at={schedule.lastTickAt} />
              </td>
              <td>{schedule.paused ? <span class="warn">paused</span> : "running"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

/** The queue's visibility timeout, max deliveries and retention, editable. */
const Settings = ({ name }: { readonly name: string }) => {
  const [draft, setDraft] = useState<Record<string, string>>({})
  const info = usePoll(() => call((client) => client.queues.info({ path: { name } })), `info:${name}`)
  const current = info.value
  if (current === undefined) return <p class="muted">{info.error ?? "Loading…"}</p>
  const fields = [
    ["visibilityTimeout", "Visibility timeout (ms)", Duration.toMillis(current.visibilityTimeout)],
    ["maxDeliveries", "Max deliveries", current.maxDeliveries],
    ["retention", "Retention (ms)", Duration.toMillis(current.retention)]
  ] as const
  const save = async () => {
    const payload: Record<string, number> = {}
    for (const [field] of fields) {
      const text = draft[field]
      if (text !== undefined && text.trim() !== "") payload[field] = Number(text)
    }
    const outcome = await call((client) => client.queues.update({ path: { name }, payload }))
    if (outcome.ok) {
      notify("done", `Settings of ${name} saved.`)
      setDraft({})
      info.reload()
    } else {
      notify("refused", outcome.message)
    }
  }
  return (
    <form
      class="settings"
      onSubmit={(event) => {
        event.preventDefault()
        void save()
      }}
    >
      {fields.map(([field, label, value]) => (
        <label key={field}>
          {label}
          <input
            name={field}
            inputMode="numeric"
            value={draft[field] ?? String(value)}
            onInput={(e) => setDraft({ ...draft, [field]: e.currentTarget.value })}
          />
        </label>
      ))}
      <p class="muted small">
        Concurrency limit: {current.concurrencyLimit ?? "none"}; rate limit:{" "}
        {current.rateLimit === null
          ? "none"
          : `${current.rateLimit.limit} per ${Duration.toMillis(current.rateLimit.interval)} ms`}
        ; events: {current.events ? "recorded" : "off"}.
      </p>
      <button type="submit">Save settings</button>
    </form>
  )
}
