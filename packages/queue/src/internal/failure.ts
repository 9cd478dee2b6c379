/** What a failed delivery records as its last error. */
import * as Cause from "effect/Cause"

/** The text recorded as a failed delivery's last error: the failure's tag and message, or the cause. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const error = failure._tag === "Some" ? failure.value : Cause.squash(cause)
  if (error instanceof Error) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : error.name
    return failure._tag === "Some" ? `${tag}: ${error.message}` : `defect: ${tag}: ${error.message}`
  }
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}
