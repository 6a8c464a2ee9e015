"""Initial broker schema: policy, secrets, challenges, attestations, audit ledger, wrapped key material.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    policy_head = op.create_table(
        "policy_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("policy_id", sa.String(128), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "secret_versions",
        sa.Column("path", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("destroyed_at_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("path", "version"),
    )
    op.create_table(
        "challenges",
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_challenges_expires", "challenges", ["expires_at_ms"])
    op.create_table(
        "attestations",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("key_config", sa.LargeBinary, nullable=False),
        sa.Column("claims", sa.Text, nullable=False),
        sa.Column("policy_revision", sa.Integer, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_attestations_expires", "attestations", ["expires_at_ms"])
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("policy_revision", sa.Integer, nullable=True),
        sa.Column("ids", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("kid", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "key_material",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("public", sa.LargeBinary, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(policy_head, [{"id": 1, "revision": 0, "updated_at_ms": 0}])
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])


def downgrade() -> None:
    for name in (
        "key_material",
        "audit_checkpoints",
        "audit_records",
        "audit_head",
        "attestations",
        "challenges",
        "secret_versions",
        "policies",
        "policy_head",
    ):
        op.drop_table(name)
