"""A work message whose handler fails after its channel died (the broker connection was lost)
is left to RabbitMQ, which requeues it; the failed nack does not escape as a second error."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aio_pika.exceptions import ChannelInvalidStateError
from faststream.rabbit.message import RabbitMessage

from chat_runtime.work import process_work


class DeadChannelMessage:
    body = b"{}"

    def __init__(self) -> None:
        self.nacks = 0

    async def nack(self) -> None:
        self.nacks += 1
        raise ChannelInvalidStateError

    async def ack(self) -> None:
        raise AssertionError("a failed message must not be acknowledged")


async def test_a_failed_message_on_a_dead_channel_is_left_to_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message = DeadChannelMessage()

    async def fails(body: Any) -> None:
        raise RuntimeError("the attempt was abandoned")

    await process_work(cast(RabbitMessage, message), lambda raw: object(), fails)
    assert message.nacks == 1
    assert "the broker requeues it" in caplog.text
