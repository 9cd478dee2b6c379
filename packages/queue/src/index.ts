/** @keel/queue: a durable message queue on SQL that never duplicates and never loses. */
export * as Consumer from "./Consumer.js"
export * as Message from "./Message.js"
export * as Metrics from "./Metrics.js"
export * as Options from "./Options.js"
export * as Queue from "./Queue.js"
export * as QueueError from "./QueueError.js"
export * as QueueStore from "./QueueStore.js"
export * as SqlQueueStore from "./SqlQueueStore.js"
