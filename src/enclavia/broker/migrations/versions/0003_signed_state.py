"""Signed state: policy revisions signed and chained, ledger records name the policy digest and can carry
an aggregate count, checkpoints carry the policy high-water mark.

* ``policies``: ``prev_digest``, ``digest``, ``signature`` (NULL on rows written before this revision; the
  broker signs such a legacy chain once, at the first start after the upgrade, and only while no signed
  state exists yet: see ``enclavia.broker.policychain``).
* ``audit_records``: ``policy_digest`` (the signed revision a decision was made under) and ``count`` (a
  periodic aggregate of unauthenticated events). Both are part of the record hash only when not NULL, so
  the hashes of existing records do not change.
* ``audit_checkpoints``: ``policy_revision`` and ``policy_digest`` (signed with the checkpoint: the
  highest revision the broker had seen), ``every`` (the cadence in force).
* PostgreSQL: ``enclavia_audit_append`` takes the two new record fields.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION enclavia_audit_append2(
    p_time text, p_action text, p_outcome text, p_code text, p_rev integer, p_ids text, p_async boolean,
    p_digest text, p_count bigint
) RETURNS TABLE (out_seq bigint, out_hash text, out_prev text)
LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
    prev text;
    body text;
    h text;
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    UPDATE audit_head SET seq = audit_head.seq + 1 WHERE id = 1 RETURNING audit_head.seq, audit_head.hash
        INTO s, prev;
    body := '{"action":"' || p_action || '","code":"' || p_code || '"'
        || CASE WHEN p_count IS NULL THEN '' ELSE ',"count":' || p_count::text END
        || ',"ids":' || p_ids || ',"outcome":"' || p_outcome || '"'
        || CASE WHEN p_digest IS NULL THEN '' ELSE ',"policy_digest":"' || p_digest || '"' END
        || ',"policy_revision":' || coalesce(p_rev::text, 'null')
        || ',"prev_hash":"' || prev || '","seq":' || s::text || ',"time":"' || p_time || '"}';
    h := encode(sha256(convert_to(body, 'UTF8')), 'hex');
    INSERT INTO audit_records
        (seq, time, action, outcome, code, policy_revision, ids, prev_hash, hash, policy_digest, count)
        VALUES (s, p_time, p_action, p_outcome, p_code, p_rev, p_ids, prev, h, p_digest, p_count);
    UPDATE audit_head SET hash = h WHERE id = 1;
    RETURN QUERY SELECT s, h, prev;
END
$$;
"""


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("prev_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("signature", sa.String(128), nullable=True))
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("policy_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("count", sa.BigInteger, nullable=True))
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("policy_revision", sa.Integer, nullable=True))
        batch.add_column(sa.Column("policy_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("every", sa.Integer, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS enclavia_audit_append2"
            "(text, text, text, text, integer, text, boolean, text, bigint)"
        )
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("every")
        batch.drop_column("policy_digest")
        batch.drop_column("policy_revision")
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("count")
        batch.drop_column("policy_digest")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("signature")
        batch.drop_column("digest")
        batch.drop_column("prev_digest")
