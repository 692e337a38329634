"""Vectors: one HNSW (cosine) index per embedding model.

``event_embedding`` holds vectors of any dimension with the model that made them. Each model gets
a partial index on ``(embedding::vector(dim)) vector_cosine_ops WHERE model = '<model>'``; every
query filters on that model (as a literal, so the planner matches the partial index) and casts to
the same dimension, so vectors of different models are never compared.
"""
from __future__ import annotations

import hashlib
import logging

from db.errors import DatabaseUnavailable

log = logging.getLogger("va.db.vectors")

MAX_DIM = 2000  # pgvector's HNSW limit for `vector`
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 100


def index_name(model: str, dim: int) -> str:
    digest = hashlib.sha1(f"{model}/{dim}".encode()).hexdigest()[:12]
    return f"event_embedding_hnsw_{digest}"


def model_filter(model: str):
    """``model = '<literal>'`` as a composable SQL fragment."""
    from psycopg import sql

    return sql.SQL("model = {}").format(sql.Literal(model))


def vector_expr(dim: int, column: str = "embedding"):
    from psycopg import sql

    return sql.SQL("({}::vector({}))").format(sql.Identifier(column), sql.Literal(int(dim)))


def check_model(model: str, dim: int) -> None:
    """A model name and dimension that can have an HNSW index, or ValueError."""
    if not model or len(model) > 200:
        raise ValueError(f"embedding model name {model!r} must be 1-200 characters")
    if not 1 <= int(dim) <= MAX_DIM:
        raise ValueError(f"embedding dimension {dim} must be 1..{MAX_DIM} for an HNSW index")


def create_index(conn, table: str, name: str, model: str, dim: int) -> None:
    """The partial HNSW (cosine) index ``name`` on ``table``'s embeddings of ``model``."""
    from psycopg import sql

    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw ({expr} vector_cosine_ops)"
            " WITH (m = {m}, ef_construction = {efc}) WHERE {pred}"
        ).format(name=sql.Identifier(name), table=sql.Identifier(table), expr=vector_expr(dim),
                 m=sql.Literal(HNSW_M), efc=sql.Literal(HNSW_EF_CONSTRUCTION),
                 pred=model_filter(model))
    )


def ensure_index(conn, model: str, dim: int) -> str:
    """Register ``model`` with its dimension and create its HNSW index if missing.

    A model already registered with another dimension is refused: its vectors would not be
    comparable.
    """
    check_model(model, dim)
    row = conn.execute("SELECT dim, index_name FROM embedding_model WHERE model = %s",
                       (model,)).fetchone()
    if row is not None:
        if int(row[0]) != int(dim):
            raise DatabaseUnavailable(
                f"embedding model {model!r} is stored with dimension {row[0]}, not {dim}; give the "
                f"new model another name (VA_EMBEDDER) or delete its old vectors"
            )
        return row[1]
    name = index_name(model, dim)
    create_index(conn, "event_embedding", name, model, dim)
    conn.execute(
        "INSERT INTO embedding_model (model, dim, index_name) VALUES (%s, %s, %s)"
        " ON CONFLICT (model) DO NOTHING", (model, int(dim), name))
    log.info("created HNSW index %s for %s (%d-d)", name, model, dim)
    return name


def models(conn) -> dict[str, int]:
    """Registered embedding models and their dimensions."""
    return {r[0]: int(r[1]) for r in conn.execute("SELECT model, dim FROM embedding_model")}
