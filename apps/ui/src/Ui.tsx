/**
 * The pieces every page uses: polling (`usePoll`, the live refresh), the confirmation dialog every
 * destructive action goes through (`confirmAction`), the notice line that shows what an action did
 * or the API's reason for refusing it (`notify`), paging by id (`usePages`, `Pager`), payload
 * previews and the filter over them, the depth sparkline and formatting of times.
 */
import type { ComponentChildren } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import uPlot from "uplot"
import type { Outcome } from "./Api.js"

/** How often a page refreshes what it shows. */
export const refreshMs = 2000

/** The latest value a page polls for, and the error of the latest attempt. */
export interface Polled<A> {
  readonly value: A | undefined
  readonly error: string | undefined
  /** Polls again now (after an action). */
  readonly reload: () => void
}

/** Calls `load` now and every `refreshMs` while the component is shown, and again when `key` changes. */
export const usePoll = <A,>(load: () => Promise<Outcome<A>>, key: string): Polled<A> => {
  const [value, setValue] = useState<A | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [tick, setTick] = useState(0)
  const loader = useRef(load)
  loader.current = load
  useEffect(() => {
    let stopped = false
    let timer: number | undefined
    const run = async () => {
      const outcome = await loader.current()
      if (stopped) return
      if (outcome.ok) {
        setValue(outcome.value)
        setError(undefined)
      } else {
        setError(outcome.message)
      }
      timer = window.setTimeout(run, refreshMs)
    }
    void run()
    return () => {
      stopped = true
      window.clearTimeout(timer)
    }
  }, [key, tick])
  useEffect(() => setValue(undefined), [key])
  return { value, error, reload: () => setTick((n) => n + 1) }
}

// ---------------------------------------------------------------------------------------------
// Notices and confirmations
// ---------------------------------------------------------------------------------------------

/** A line telling what an action did (`done`) or why it was refused (`refused`). */
export interface Notice {
  readonly kind: "done" | "refused"
  readonly text: string
}

let showNotice: (notice: Notice | undefined) => void = () => undefined

/** Shows a notice under the navigation until the next one, or until another page is shown. */
export const notify = (kind: Notice["kind"], text: string): void => showNotice({ kind, text })

/** Removes the notice (when another page is shown). */
export const clearNotice = (): void => showNotice(undefined)

/** Where notices appear (once per page). */
export const NoticeLine = () => {
  const [notice, setNotice] = useState<Notice | undefined>(undefined)
  showNotice = setNotice
  if (notice === undefined) return null
  return (
    <div class={`notice ${notice.kind}`} role={notice.kind === "refused" ? "alert" : "status"}>
      <span>{notice.text}</span>
      <button type="button" class="link" onClick={() => setNotice(undefined)} aria-label="Dismiss">
        ×
      </button>
    </div>
  )
}

interface Question {
  readonly text: string
  readonly action: string
  readonly answer: (yes: boolean) => void
}

let ask: (question: Question) => void = (question) => question.answer(false)

/** Asks the user to confirm `text`; resolves true only when the `action` button is pressed. */
export const confirmAction = (text: string, action: string): Promise<boolean> =>
  new Promise((answer) => ask({ text, action, answer }))

/** The modal confirmation dialog (once per page): Escape or Cancel says no. */
export const ConfirmDialog = () => {
  const [question, setQuestion] = useState<Question | undefined>(undefined)
  const dialog = useRef<HTMLDialogElement>(null)
  ask = setQuestion
  useEffect(() => {
    if (question !== undefined && dialog.current !== null && !dialog.current.open) dialog.current.showModal()
  }, [question])
  const close = (yes: boolean) => {
    dialog.current?.close()
    question?.answer(yes)
    setQuestion(undefined)
  }
  return (
    <dialog
      ref={dialog}
      class="confirm"
      aria-labelledby="confirm-text"
      onCancel={(event) => {
        event.preventDefault()
        close(false)
      }}
    >
      <p id="confirm-text">{question?.text}</p>
      <div class="actions">
        <button type="button" onClick={() => close(false)} autofocus>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => close(true)}>
          {question?.action ?? "Confirm"}
        </button>
      </div>
    </dialog>
  )
}

/**
 * A destructive action: asks first, runs `request`, then tells what happened (the API's message
 * when it refused) and calls `after` on success.
 */
export const destructive = async <A,>(
  question: string,
  action: string,
  request: () => Promise<Outcome<A>>,
  done: (value: A) => string,
  after: () => void
): Promise<void> => {
  if (!(await confirmAction(question, action))) return
  const outcome = await request()
  if (outcome.ok) {
    notify("done", done(outcome.value))
    after()
  } else {
    notify("refused", outcome.message)
  }
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/** Messages per page of every message list. */
export const pageSize = 20

/** Where a list paged by id stands: the id each page shown so far starts from. */
export interface Pages {
  /** The id the current page starts from (`before` or `after` it), none for the first page. */
  readonly cursor: number | undefined
  /** The current page's number, from 1. */
  readonly number: number
  readonly back: () => void
  /** Shows the page that starts from `id` (the last id of the current page). */
  readonly forward: (id: number) => void
  /** Back to the first page. */
  readonly reset: () => void
}

/** The pages of one list, starting on the first. */
export const usePages = (): Pages => {
  const [cursors, setCursors] = useState<ReadonlyArray<number | undefined>>([undefined])
  return {
    cursor: cursors[cursors.length - 1],
    number: cursors.length,
    back: () => setCursors(cursors.slice(0, -1)),
    forward: (id) => setCursors([...cursors, id]),
    reset: () => setCursors([undefined])
  }
}

/** The buttons between pages: back (disabled on the first) and on (when `next` has an id). */
export const Pager = (props: {
  readonly pages: Pages
  readonly next: number | undefined
  readonly backLabel: string
  readonly forwardLabel: string
}) => {
  const { pages, next } = props
  return (
    <div class="pager">
      <button type="button" disabled={pages.number === 1} onClick={pages.back}>
        {props.backLabel}
      </button>
      <span class="muted">page {pages.number}</span>
      <button
        type="button"
        disabled={next === undefined}
        onClick={() => next !== undefined && pages.forward(next)}
      >
        {props.forwardLabel}
      </button>
    </div>
  )
}

/** Whether a message matches a filter (lower case): its id exactly, or text of its payload or last error. */
export const matchesFilter = (
  message: { readonly id: number; readonly payload: unknown; readonly lastError: string | null },
  needle: string
): boolean =>
  needle === "" ||
  String(message.id) === needle ||
  (JSON.stringify(message.payload) ?? "").toLowerCase().includes(needle) ||
  (message.lastError ?? "").toLowerCase().includes(needle)

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/** Characters of a payload shown before it is cut. */
export const previewChars = 400

/** A payload pretty-printed, cut after `previewChars` characters. */
export const preview = (payload: unknown): string => {
  const text = JSON.stringify(payload, null, 2) ?? String(payload)
  return text.length <= previewChars
    ? text
    : `${text.slice(0, previewChars)}\n… ${text.length - previewChars} more characters`
}

/** A duration in the largest sensible unit: `850 ms`, `12 s`, `4 min`, `3 h`, `2 d`. */
export const duration = (ms: number): string => {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h`
  return `${Math.round(ms / 86_400_000)} d`
}

/** A time as local date and time, with the full ISO time on hover. */
export const Time = ({ at }: { readonly at: Date | number | null }) => {
  if (at === null) return <span class="muted">—</span>
  const date = typeof at === "number" ? new Date(at) : at
  return <time dateTime={date.toISOString()}>{date.toLocaleString()}</time>
}

/** A number, or a dash for null. */
export const num = (value: number | null, digits = 0): string =>
  value === null ? "—" : value.toLocaleString(undefined, { maximumFractionDigits: digits })

/** A labelled count in the overview's summary. */
export const Stat = (props: { readonly label: string; readonly children: ComponentChildren }) => (
  <div class="stat">
    <div class="value">{props.children}</div>
    <div class="label">{props.label}</div>
  </div>
)

// ---------------------------------------------------------------------------------------------
// The depth sparkline
// ---------------------------------------------------------------------------------------------

/** A queue's depth over time, as a small uPlot line without axes. */
export const Sparkline = (props: {
  readonly samples: ReadonlyArray<{ readonly at: number; readonly depth: number }>
  readonly label: string
}) => {
  const host = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const data: uPlot.AlignedData = [
    props.samples.map((sample) => sample.at / 1000),
    props.samples.map((sample) => sample.depth)
  ]
  useEffect(() => {
    if (host.current === null) return
    plot.current = new uPlot(
      {
        width: 140,
        height: 32,
        cursor: { show: false },
        legend: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        axes: [{ show: false }, { show: false }],
        scales: {
          x: { time: true },
          y: { range: (_plot, _min, max) => [-0.05 * Math.max(1, max), 1.1 * Math.max(1, max)] }
        },
        series: [
          {},
          { stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.15)", width: 1.5, points: { show: false } }
        ]
      },
      data,
      host.current
    )
    return () => {
      plot.current?.destroy()
      plot.current = null
    }
  }, [])
  useEffect(() => {
    plot.current?.setData(data)
  })
  return <div class="sparkline" ref={host} role="img" aria-label={props.label} />
}
