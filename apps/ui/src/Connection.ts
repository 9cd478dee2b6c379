/**
 * What the page knows about the server: the token it sends (kept in this browser's local storage)
 * and whether the last request was answered (`online`), refused for the token (`unauthorized`) or
 * never arrived (`lost`). Components subscribe to changes.
 */

/** The state of the connection as of the last request. */
export type State = "online" | "lost" | "unauthorized"

const storageKey = "keel.token"
let state: State = "online"
const listeners = new Set<(state: State) => void>()

/** The token saved in this browser, if any. */
export const token = (): string | null => window.localStorage.getItem(storageKey)

/** Saves (or with null forgets) the token. */
export const setToken = (value: string | null): void => {
  if (value === null) window.localStorage.removeItem(storageKey)
  else window.localStorage.setItem(storageKey, value)
}

/** The state as of the last request. */
export const current = (): State => state

/** Records how the last request went and tells every subscriber when that changed. */
export const report = (next: State): void => {
  if (next === state) return
  state = next
  for (const listener of listeners) listener(next)
}

/** Calls `listener` on every change until the returned function is called. */
export const subscribe = (listener: (state: State) => void): (() => void) => {
  listeners.add(listener)
  return () => {
    listeners.delete(listener)
  }
}
