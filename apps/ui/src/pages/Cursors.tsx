/** Cursors of the server's namespace: position, stored position, last flush; reset one (confirmed). */
import { useState } from "preact/hooks"
import { call } from "../Api.js"
import { destructive, Time, usePoll } from "../Ui.js"

/** The cursors page (`#/cursors`). */
export const Cursors = () => {
  const list = usePoll(() => call((client) => client.cursors.list()), "cursors")
  const [positions, setPositions] = useState<Record<string, string>>({})
  return (
    <section aria-labelledby="cursors-title">
      <h1 id="cursors-title">
        Cursors{list.value !== undefined && <small> ({list.value.namespace})</small>}
      </h1>
      {list.error !== undefined && <p class="error">{list.error}</p>}
      <div class="scroll">
        <table aria-label="Cursors">
          <thead>
            <tr>
              <th scope="col">Peer</th>
              <th scope="col">Position</th>
              <th scope="col">Stored</th>
              <th scope="col">Last flush</th>
              <th scope="col">Reset to</th>
            </tr>
          </thead>
          <tbody>
            {list.value?.cursors.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No cursors.
                </td>
              </tr>
            )}
            {list.value?.cursors.map((cursor) => (
              <tr key={cursor.peer} data-peer={cursor.peer}>
                <th scope="row">{cursor.peer}</th>
                <td class="mono">{cursor.position}</td>
                <td class="mono">
                  {cursor.stored ?? "—"} {cursor.pending && <span class="warn">flush pending</span>}
                </td>
                <td>
                  <Time at={cursor.updatedAt} />
                </td>
                <td>
                  <form
                    class="inline"
                    onSubmit={(event) => {
                      event.preventDefault()
                      const position = (positions[cursor.peer] ?? "").trim()
                      void destructive(
                        `Reset ${cursor.peer} from ${cursor.position} to ${position}? It is written at once, backwards too.`,
                        "Reset",
                        () =>
                          call((client) =>
                            client.cursors.reset({ path: { peer: cursor.peer }, payload: { position } })
                          ),
                        (reset) => `${reset.peer} is at ${reset.position}.`,
                        list.reload
                      )
                    }}
                  >
                    <input
                      aria-label={`new position of ${cursor.peer}`}
                      value={positions[cursor.peer] ?? ""}
                      onInput={(e) => setPositions({ ...positions, [cursor.peer]: e.currentTarget.value })}
                    />
                    <button type="submit">Reset</button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  )
}
