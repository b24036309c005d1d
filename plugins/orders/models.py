"""The ``orders``, ``order_items`` and ``order_emails`` tables.

The foreign keys name the ``users`` and ``products`` tables and ``OrderItem.product`` names
the ``Product`` class by string: the declarative registry resolves it, so this plugin never
imports the products plugin (it ``requires`` it, so the class is registered).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fastplug.plugins.db.api import Base


class Order(Base):
    """One order of one user; its items are loaded explicitly (``selectinload``)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="placed")
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )

    __table_args__ = (Index("ix_orders_user_id_id", "user_id", "id"),)


class OrderItem(Base):
    """A line of an order: a product, a quantity and the price it was sold at."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Any] = relationship("Product")

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


class OrderEmail(Base):
    """The confirmation email of one order, recorded by the ``orders.send_confirmation`` task
    instead of being sent. ``order_id`` is unique: a redelivered task records nothing twice."""

    __tablename__ = "order_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
