"""The runner's weight state (rollout/core/weights.py): calls held while paused, the version a
request leaves under, the pause's grace for the request sent last, and each token's version."""

import asyncio
import threading
import time

from rollout.core.weights import PolicyWeights, token_version


def test_a_paused_state_holds_sends_until_resume_from_another_thread():
    async def main():
        weights = PolicyWeights(version=3)
        assert await weights.open_to_send() == 3  # not paused: at once
        weights.pause()
        send = asyncio.ensure_future(weights.open_to_send())
        await asyncio.sleep(0.05)
        assert not send.done()
        weights.set(4)
        threading.Thread(target=weights.resume).start()
        assert await asyncio.wait_for(send, 2) == 4  # the version current when it leaves

    asyncio.run(main())


def test_settle_gives_the_request_sent_last_the_grace_and_no_more():
    async def main():
        weights = PolicyWeights(version=0)
        started = time.monotonic()
        await weights.settle(0.5)  # nothing sent: no wait
        assert time.monotonic() - started < 0.1
        await weights.open_to_send()
        await asyncio.sleep(0.1)
        weights.pause()
        started = time.monotonic()
        await weights.settle(0.4)  # sent 0.1 s ago: about 0.3 s left
        waited = time.monotonic() - started
        assert 0.25 <= waited < 0.4, waited
        started = time.monotonic()
        await weights.settle(0.4)  # paused since: nothing was sent, the grace has passed
        assert time.monotonic() - started < 0.05

    asyncio.run(main())


def test_a_tokens_version_is_the_engines_then_the_sent_then_the_requests():
    assert token_version("7", 5, 1) == 7  # SGLang's report, as a string
    assert token_version("default", 5, 1) == 5  # not an integer: the version it was sent under
    assert token_version(None, None, 1) == 1
    assert token_version(True, None, None) is None
