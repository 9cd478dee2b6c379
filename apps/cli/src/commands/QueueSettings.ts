/**
 * The flags of a queue's settings (`keel queue create`, `keel queue configure`). Values are read
 * by the handlers (`Parse`) and checked by the queue, which names the setting it refuses.
 */
import type * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"

/** An optional duration flag; `description` gets the accepted forms appended. */
export const duration = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withDescription(`${description} (30s, 5m, 2h, 7d, '90 seconds', or milliseconds).`),
    Options.optional
  )

/** The flags of a queue's settings, shared by `keel queue create` and `keel queue configure`. */
export const settings = {
  visibilityTimeout: duration("visibility-timeout", "How long a read hides a message (default 30s)"),
  maxDeliveries: Options.integer("max-deliveries").pipe(
    Options.withDescription("Deliveries before a message is dead-lettered (default 5)."),
    Options.optional
  ),
  retention: duration("retention", "How long archived messages are kept (default 7d)"),
  concurrencyLimit: Options.text("concurrency-limit").pipe(
    Options.withDescription(
      "At most N of the queue's messages leased at once, by every consumer together: 1-100000, or none (default none)."
    ),
    Options.optional
  ),
  rateLimit: Options.text("rate-limit").pipe(
    Options.withDescription(
      "At most N leases per DURATION, by every consumer together: N/DURATION (100/1s, 5/250ms; N 1-1000000, DURATION 1ms-1d), or none (default none)."
    ),
    Options.optional
  ),
  groupConcurrency: Options.integer("group-concurrency").pipe(
    Options.withDescription("Messages of one ordered group in flight at once, 1-1000 (default 1)."),
    Options.optional
  ),
  groupOnDead: Options.choice("group-on-dead", ["skip", "block"]).pipe(
    Options.withDescription(
      "What a dead letter does to its group: skip (default: the group goes on) or block (the group waits until it is requeued or purged)."
    ),
    Options.optional
  ),
  // Two flags rather than one with a negation: @effect/cli gives a boolean flag a default, and
  // `configure` must tell "absent" (unchanged) from "off".
  events: Options.boolean("events").pipe(
    Options.withDescription(
      "Record each message's lifecycle in the event log (`keel queue events`); default off."
    )
  ),
  noEvents: Options.boolean("no-events").pipe(
    Options.withDescription("Stop recording the queue's events (those recorded are kept).")
  )
}

/** The settings flags, parsed. */
export type SettingsInput = Command.Command.ParseConfig<typeof settings>
