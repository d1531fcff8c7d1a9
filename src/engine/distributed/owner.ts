/** The owner of every distributed run: the queue, not a process; liveness is the workers' heartbeats on the run. */
export const queueOwner = "queue";
