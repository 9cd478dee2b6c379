/**
 * Registered workers: id, queue, host, pid, the messages each holds a live lease on, its own
 * timeout and its heartbeat age; stale ones (as the server judges, past their own timeout) marked.
 */
import * as Duration from "effect/Duration"
import { call } from "../Api.js"
import { duration, num, Time, usePoll } from "../Ui.js"

/** The workers page (`#/workers`). */
export const Workers = () => {
  const workers = usePoll(() => call((client) => client.dashboard.workers()), "workers")
  return (
    <section aria-labelledby="workers-title">
      <h1 id="workers-title">Workers</h1>
      {workers.error !== undefined && <p class="error">{workers.error}</p>}
      <div class="scroll">
        <table aria-label="Workers">
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Queue</th>
              <th scope="col">Host</th>
              <th scope="col" class="n">
                Pid
              </th>
              <th scope="col" class="n">
                In flight
              </th>
              <th scope="col">Timeout</th>
              <th scope="col">Started</th>
              <th scope="col">Heartbeat</th>
            </tr>
          </thead>
          <tbody>
            {workers.value?.workers.length === 0 && (
              <tr>
                <td colSpan={8} class="muted">
                  No workers registered.
                </td>
              </tr>
            )}
            {workers.value?.workers.map((worker) => (
              <tr key={worker.id} class={worker.stale ? "stale" : ""} data-worker={worker.id}>
                <th scope="row" class="mono">
                  {worker.id}
                </th>
                <td>{worker.queue ?? "any"}</td>
                <td>{worker.host}</td>
                <td class="n">{worker.pid}</td>
                <td class="n" data-count="inFlight">
                  {num(worker.inFlight)}
                </td>
                <td data-timeout={Duration.toMillis(worker.timeout)}>
                  {duration(Duration.toMillis(worker.timeout))}
                </td>
                <td>
                  <Time at={worker.startedAt.epochMillis} />
                </td>
                <td>
                  {duration(worker.heartbeatAgeMs)} ago {worker.stale && <strong class="warn">stale</strong>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  )
}
