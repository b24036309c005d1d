"""``orders.send_confirmation``: the order's confirmation email, recorded (not sent) once.

Enqueued through the tasks outbox in the order's own transaction. Delivery is at least
once: the outbox guard runs a task id's side effect once, and ``order_emails.order_id`` is
unique (``ON CONFLICT DO NOTHING``), so even a second task for the same order, or a worker
that died between recording and acknowledging, records one email.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fastplug.config import Settings
from fastplug.plugins.db.api import SESSIONMAKER
from fastplug.plugins.orders.models import Order, OrderEmail
from fastplug.plugins.orders.settings import OrdersSettings
from fastplug.plugins.orders.store import get_order, table

SEND_CONFIRMATION = "orders.send_confirmation"
log = logging.getLogger("fastplug.orders")


def compose(order: Order, name: str) -> tuple[str, str]:
    """The subject and plain-text body of ``order``'s confirmation email."""
    lines = [
        f"  {item.quantity} x {item.product.name} ({item.product.sku}) at {item.unit_price} = "
        f"{item.unit_price * item.quantity}"
        for item in order.items
    ]
    body = "\n".join(
        [f"Hello {name},", "", f"thank you for your order #{order.id}:", "", *lines, "", f"Total: {order.total}", ""]
    )
    return f"Your order #{order.id} is confirmed", body


async def _insert_once(session: AsyncSession, values: dict[str, Any]) -> bool:
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        statement = upsert(OrderEmail.__table__).values(values).on_conflict_do_nothing(index_elements=["order_id"])
        return bool((await session.execute(statement)).rowcount)
    try:  # other databases: the unique constraint decides, in a savepoint
        async with session.begin_nested():
            await session.execute(insert(OrderEmail.__table__).values(values))
    except IntegrityError:
        return False
    return True


async def record_confirmation(session: AsyncSession, order_id: int, sender: str) -> bool:
    """Record ``order_id``'s confirmation email in ``session``'s transaction; False when
    it is recorded already or the order does not exist (any more)."""
    order = await get_order(session, order_id)
    if order is None:
        log.warning("orders: no order %d to confirm (deleted?)", order_id)
        return False
    users = table("users")
    user = (await session.execute(users.select().where(users.c.id == order.user_id))).first()
    if user is None:
        return False
    subject, body = compose(order, user.name)
    values = {
        "order_id": order_id,
        "sender": sender,
        "recipient": user.email,
        "subject": subject,
        "body": body,
    }
    return await _insert_once(session, values)


def register(celery_app: Any, settings: Settings) -> None:
    """Define ``orders.send_confirmation`` on ``celery_app`` (the ``register_tasks`` hook)."""
    sender = settings.section("orders", OrdersSettings).email_from

    @celery_app.task(name=SEND_CONFIRMATION, bind=True)
    async def send_confirmation(self: Any, order_id: int) -> bool:
        """Record the confirmation email of ``order_id``; True when this run recorded it."""
        maker = self.services.require(SESSIONMAKER, async_sessionmaker)
        async with maker() as session:
            recorded = await record_confirmation(session, order_id, sender)
            await session.commit()
        return recorded
