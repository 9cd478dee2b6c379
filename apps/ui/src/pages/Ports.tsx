/**
 * Port reservations grouped by project (or by path when they have none), with tag, port, last use
 * and expiry; release one; look up which reservation holds a port.
 */
import { useState } from "preact/hooks"
import { call } from "../Api.js"
import { destructive, Time, usePoll } from "../Ui.js"

interface Held {
  readonly path: string
  readonly tag: string | null
  readonly port: number
  readonly project: string | null
  readonly lastUsedAt: { readonly epochMillis: number }
  readonly expiresAt: { readonly epochMillis: number } | null
}

const groupOf = (reservation: Held): string => reservation.project ?? reservation.path

/** The ports page (`#/ports`). */
export const Ports = () => {
  const list = usePoll(() => call((client) => client.reservations.list({ urlParams: {} })), "ports")
  const groups = new Map<string, Array<Held>>()
  for (const reservation of list.value?.reservations ?? []) {
    const group = groups.get(groupOf(reservation)) ?? []
    group.push(reservation)
    groups.set(groupOf(reservation), group)
  }
  const release = (reservation: Held) =>
    destructive(
      `Release port ${reservation.port} (${reservation.tag ?? "untagged"}) of ${reservation.path}?`,
      "Release",
      () =>
        call((client) =>
          client.reservations.release({
            payload:
              reservation.tag === null
                ? { path: reservation.path, untaggedOnly: true }
                : { path: reservation.path, tag: reservation.tag }
          })
        ),
      (released) => `Released ${released.released.map((r) => r.port).join(", ") || "nothing"}.`,
      list.reload
    )
  return (
    <section aria-labelledby="ports-title">
      <h1 id="ports-title">Ports</h1>
      <Lookup />
      {list.error !== undefined && <p class="error">{list.error}</p>}
      {list.value?.reservations.length === 0 && <p class="muted">No ports reserved.</p>}
      {[...groups].map(([group, reservations]) => (
        <div class="group" key={group}>
          <h2>{group}</h2>
          <div class="scroll">
            <table aria-label={`Reservations of ${group}`}>
              <thead>
                <tr>
                  <th scope="col" class="n">
                    Port
                  </th>
                  <th scope="col">Tag</th>
                  <th scope="col">Path</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {reservations.map((reservation) => (
                  <tr key={reservation.port} data-port={reservation.port}>
                    <th scope="row" class="n mono">
                      {reservation.port}
                    </th>
                    <td>{reservation.tag ?? <span class="muted">untagged</span>}</td>
                    <td class="mono">{reservation.path}</td>
                    <td>
                      <Time at={reservation.lastUsedAt.epochMillis} />
                    </td>
                    <td>
                      {reservation.expiresAt === null ? (
                        "never"
                      ) : (
                        <Time at={reservation.expiresAt.epochMillis} />
                      )}
                    </td>
                    <td>
                      <button type="button" class="danger" onClick={() => release(reservation)}>
                        Release
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      ))}
    </section>
  )
}

/** Which reservation holds a port. */
const Lookup = () => {
  const [text, setText] = useState("")
  const [answer, setAnswer] = useState<string | undefined>(undefined)
  return (
    <form
      class="toolbar"
      onSubmit={async (event) => {
        event.preventDefault()
        const port = Number(text)
        const outcome = await call((client) => client.reservations.showPort({ path: { port } }))
        setAnswer(
          outcome.ok
            ? `Port ${outcome.value.port} is held by ${outcome.value.path} (${outcome.value.tag ?? "untagged"}).`
            : outcome.message
        )
      }}
    >
      <label>
        Port <input inputMode="numeric" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <button type="submit">Look up</button>
      {answer !== undefined && (
        <output class="answer" aria-live="polite">
          {answer}
        </output>
      )}
    </form>
  )
}
