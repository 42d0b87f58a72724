"""A reduce-side join of two named inputs: users (CSV ``user_id,name``) and orders (JSON lines
``{"user_id": ..., "amount": ...}``) -> per user: name, number of orders and total amount."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob


def user_record(row):
    yield row["user_id"], ["user", row["name"]]


def order_record(row):
    yield str(row["user_id"]), ["order", row["amount"]]


def join_user_orders(user_id, tagged):
    name, amounts = None, []
    for tag, value in tagged:
        if tag == "user":
            name = value
        else:
            amounts.append(value)
    if name is not None:
        yield user_id, {"name": name, "orders": len(amounts), "total": round(sum(sorted(amounts)), 6)}


user_orders = MapReduceJob(mapper={"users": user_record, "orders": order_record},
                           reducer=join_user_orders,
                           input_format={"users": "csv", "orders": "jsonl"}, name="user_orders")
