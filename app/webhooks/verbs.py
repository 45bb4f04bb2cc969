"""The operator's changes to webhook delivery (the CLI and the admin API call these): each writes an
``operator.action`` event about the service in the same store step."""

from __future__ import annotations

from app import events as ev
from app import observe
from app.flows.grants import Acting


async def enable(ctx: Acting, endpoint: str, *, operator: str) -> bool:
    """A disabled endpoint receives again, its waiting deliveries first, in order. False if it was not
    disabled."""
    now = ctx.clock.now()
    action = ev.new(
        ev.OperatorAction, now, ev.SERVICE, None, operator=operator, action="webhook.enable", endpoint=endpoint
    )
    done = await ctx.store.enable_endpoint(endpoint, now, [action])
    if done:
        observe.emitted(ctx.tally, [action])
    return done


async def retry(ctx: Acting, delivery_id: str, *, operator: str) -> bool:
    """A failed delivery is sent again, next in its queue, with a fresh count of attempts. False if it is
    not a failed delivery."""
    now = ctx.clock.now()
    delivery = await ctx.store.get_delivery(delivery_id)
    if delivery is None or delivery.status != "failed":
        return False
    action = ev.new(
        ev.OperatorAction,
        now,
        ev.SERVICE,
        None,
        operator=operator,
        action="webhook.retry",
        endpoint=delivery.endpoint,
        delivery_id=delivery_id,
    )
    done = await ctx.store.retry_delivery(delivery_id, now, [action])  # False if it moved meanwhile
    if done:
        observe.emitted(ctx.tally, [action])
    return done
