/**
 * The overview: every queue with its counts (ready, delayed, in flight, dead), send and acknowledge
 * rates and a sparkline of its depth over the last hour; workers alive, reservations held; every
 * cursor with its position and how far the stored position lags behind it.
 */
import { call } from "../Api.js"
import { num, Sparkline, Stat, Time, usePoll } from "../Ui.js"

/** The overview page (`#/`), refreshed every 2 s. */
export const Overview = () => {
  const overview = usePoll(() => call((client) => client.dashboard.overview()), "overview")
  const cursors = usePoll(() => call((client) => client.cursors.list()), "overview-cursors")
  const data = overview.value
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      {overview.error !== undefined && <p class="error">{overview.error}</p>}
      {data === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <div class="stats">
            <Stat label="queues">{data.queues.length}</Stat>
            <Stat label="workers alive">
              <span data-testid="workers-alive">{data.workers.alive}</span>
              {data.workers.stale > 0 && <small class="warn"> +{data.workers.stale} stale</small>}
            </Stat>
            <Stat label="reservations">
              <span data-testid="reservation-count">{data.reservations}</span>
            </Stat>
            <Stat label={`cursors (${data.cursors.namespace})`}>
              <span data-testid="cursor-count">{data.cursors.count}</span>
            </Stat>
          </div>
          <h2>Queues</h2>
          <div class="scroll">
            <table class="queues">
              <thead>
                <tr>
                  <th scope="col">Queue</th>
                  <th scope="col" class="n">
                    Ready
                  </th>
                  <th scope="col" class="n">
                    Delayed
                  </th>
                  <th scope="col" class="n">
                    In flight
                  </th>
                  <th scope="col" class="n">
                    Dead
                  </th>
                  <th scope="col" class="n">
                    Sent/min
                  </th>
                  <th scope="col" class="n">
                    Acked/min
                  </th>
                  <th scope="col">Depth, last hour</th>
                </tr>
              </thead>
              <tbody>
                {data.queues.length === 0 && (
                  <tr>
                    <td colSpan={8} class="muted">
                      No queues yet.
                    </td>
                  </tr>
                )}
                {data.queues.map((queue) => (
                  <tr key={queue.queue} data-queue={queue.queue}>
                    <th scope="row">
                      <a href={`#/queues/${encodeURIComponent(queue.queue)}`}>{queue.queue}</a>
                    </th>
                    <td class="n" data-count="ready">
                      {num(queue.depth)}
                    </td>
                    <td class="n" data-count="delayed">
                      {num(queue.delayed)}
                    </td>
                    <td class="n" data-count="inFlight">
                      {num(queue.inFlight)}
                    </td>
                    <td class={queue.dead > 0 ? "n warn" : "n"} data-count="dead">
                      {num(queue.dead)}
                    </td>
                    <td class="n">{num(queue.sendRate, 1)}</td>
                    <td class="n">{num(queue.ackRate, 1)}</td>
                    <td>
                      <Sparkline
                        samples={queue.history}
                        label={`depth of ${queue.queue} over the last hour`}
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p class="muted small">
            Rates count what passed through this server; the depth is sampled by the server since it started.
          </p>
        </>
      )}
      <h2>Cursors</h2>
      {cursors.value === undefined ? (
        <p class="muted">{cursors.error ?? "Loading…"}</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Peer</th>
                <th scope="col">Position</th>
                <th scope="col">Stored</th>
                <th scope="col">Last flush</th>
                <th scope="col">Lag</th>
              </tr>
            </thead>
            <tbody>
              {cursors.value.cursors.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    No cursors.
                  </td>
                </tr>
              )}
              {cursors.value.cursors.map((cursor) => (
                <tr key={cursor.peer}>
                  <th scope="row">{cursor.peer}</th>
                  <td class="mono">{cursor.position}</td>
                  <td class="mono">{cursor.stored ?? "—"}</td>
                  <td>
                    <Time at={cursor.updatedAt} />
                  </td>
                  <td>{cursor.pending ? <span class="warn">flush pending</span> : "none"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
