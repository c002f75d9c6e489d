"""A work-queue consumer: a durable JetStream pull consumer shared by every replica, worked here
at most `max_in_flight` messages at a time.

`WorkQueue.start` declares the durable consumer (or updates it to the given
config) and binds to it; then one loop pulls a message whenever one of the
`max_in_flight` slots is free and hands it to the service's handler in a task
of its own. The handler settles its message itself (ack, nak with a delay,
term, in-progress acks while it runs): how a message ends is domain logic.
A handler that raises is logged and its message left unacked (JetStream
redelivers it after its ack wait). A failed pull (NATS away, the consumer
gone) is logged and tried again after `retry_delay_s`. `stop(grace_s=...)`
stops pulling, gives the messages being worked `grace_s` to finish, then
cancels the rest; a handler that must hand its message back at once catches
the cancellation and naks.

Used by the rag ingest consumer and the batch-job worker. It is this loop and
not FastStream's pull subscriber (`pull_sub=PullSub(...)`, `max_workers=`),
because FastStream's cannot keep what the job worker promises (see
services/inference/jobs/README.md):

- with `max_workers`, it fetches the next message while every worker is busy
  and holds it, unacked and without in-progress acks, until one is free. The
  message's ack wait runs meanwhile, so it can be redelivered to another
  replica while this one still holds it, and a busy replica holds work an
  idle one could do. Here a message is pulled only into a free slot: every
  message a replica holds is being worked.
- on stop it waits the broker's graceful timeout, then cancels, and drops the
  message it held for a busy worker without a nak; the job worker hands its
  items back at once (`grace_s=0`), rag gives its ingests a grace.
- its pull swallows timeouts and a closed connection and restarts at once
  after any other error; here a failed pull is logged and backed off.

A work queue is not request-reply, so nothing is lost without the broker's
reply and error routing: the handler holds the domain logic, this module the
mechanics (and binds each message's `Nats-Msg-Id` as the correlation id of
its log lines).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from runtime.logging import bind_request, get_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import ConsumerConfig

__all__ = ["WorkQueue"]

_log = get_logger(__name__)


class WorkQueue:
    """Pulls from one durable consumer into at most `max_in_flight` handler tasks at a time."""

    def __init__(
        self,
        handle: Callable[[Msg], Awaitable[None]],  # works one message and settles it
        *,
        name: str,
        max_in_flight: int,
        fetch_wait_s: float,
        retry_delay_s: float,
    ) -> None:
        self._handle = handle
        self._name = name  # in log lines and task names
        self._fetch_wait_s = fetch_wait_s  # how long one pull waits on an empty queue
        self._retry_delay_s = retry_delay_s  # back-off after a failed pull
        self._slots = asyncio.Semaphore(max_in_flight)
        self._working: set[asyncio.Task[None]] = set()
        self._pulling: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the queue is being pulled from."""
        return self._pulling is not None and not self._pulling.done()

    @property
    def in_flight(self) -> int:
        """Messages being worked now."""
        return len(self._working)

    async def start(self, js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
        """Create the durable consumer `config` of `stream` (or update it to `config`), then pull."""
        await js.add_consumer(stream, config)
        subscription = await js.pull_subscribe_bind(durable=config.durable_name, stream=stream)
        self._pulling = asyncio.create_task(self._pull(subscription), name=f"{self._name}-pull")

    async def stop(self, *, grace_s: float = 0.0) -> None:
        """Stop pulling; give the messages being worked `grace_s` to finish, then cancel the rest."""
        pulling = [self._pulling] if self._pulling is not None else []
        for task in pulling:
            task.cancel()
        if grace_s > 0 and self._working:
            await asyncio.wait(self._working, timeout=grace_s)
        working = list(self._working)
        for task in working:
            task.cancel()
        for outcome in await asyncio.gather(*pulling, *working, return_exceptions=True):
            if isinstance(outcome, Exception):  # not a cancellation: the unsubscribe failed
                _log.warning("work-queue stop failed", queue=self._name, error=repr(outcome))
        self._pulling = None

    async def _pull(self, subscription: JetStreamContext.PullSubscription) -> None:
        try:
            while True:
                await self._slots.acquire()
                try:
                    messages = await self._fetch(subscription)
                except BaseException:
                    self._slots.release()
                    raise
                if not messages:
                    self._slots.release()
                    continue
                self._spawn(messages[0])
                for extra in messages[1:]:  # never more than asked, but never drop one
                    await self._slots.acquire()
                    self._spawn(extra)
        finally:
            await subscription.unsubscribe()

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """The next message, or none when the queue stayed empty or the pull failed."""
        try:
            return await subscription.fetch(1, timeout=self._fetch_wait_s)
        except NatsTimeoutError:
            return []  # the queue is empty
        except NatsError as exc:
            _log.warning("work-queue pull failed", queue=self._name, error=repr(exc))
            await asyncio.sleep(self._retry_delay_s)  # back off while NATS is away
            return []

    def _spawn(self, msg: Msg) -> None:
        task = asyncio.create_task(self._work(msg), name=f"{self._name}-message")
        self._working.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._working.discard(done)
            self._slots.release()

        task.add_done_callback(finished)

    async def _work(self, msg: Msg) -> None:
        message_id = (msg.headers or {}).get("Nats-Msg-Id", "")
        with bind_request(message_id, subject=msg.subject):
            try:
                await self._handle(msg)
            except Exception as exc:  # a handler bug: JetStream redelivers the unacked message
                _log.error("work-queue handler failed", queue=self._name, exc_info=exc)
