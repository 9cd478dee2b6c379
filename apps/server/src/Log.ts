/**
 * The server's log output: each line formatted by Effect's logfmt or JSON logger, written to
 * stdout in batches — one write per turn of the event loop — instead of one synchronous write per
 * line (at thousands of requests a second, the per-line write was ~7% of the server's CPU). Lines
 * keep their order; what is pending is written before the process exits.
 */
import { Logger } from "effect"

let pending: Array<string> = []
let scheduled = false

const flush = () => {
  scheduled = false
  if (pending.length === 0) return
  const text = pending.join("")
  pending = []
  process.stdout.write(text)
}

process.on("exit", flush)

/** `format`'s lines, written to stdout in batches. */
export const batched = <Message>(format: Logger.Logger<Message, string>): Logger.Logger<Message, void> =>
  Logger.map(format, (line) => {
    pending.push(`${line}\n`)
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  })
