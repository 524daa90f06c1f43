"""Running the batches of job operations: the work on each item is done by another system.

* :mod:`streams.jobs.waits` — the answers a process waits for, matched to their batches;
* :mod:`streams.jobs.executors` — how a batch reaches the owning system (its workers over
  Kafka) and how its answer comes back;
* :mod:`streams.jobs.running` — one item batch to the end: pacing, attempts, the timeout,
  retries with backoff of what may be retried, and the outcome of every item.

The operation kind that uses them is :mod:`streams.kinds.jobs`; the agent that takes the
workers' answers is :mod:`streams.agents.job_results`.
"""
