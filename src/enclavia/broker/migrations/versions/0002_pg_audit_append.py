"""PostgreSQL: append an audit record in one statement (lock the head, hash, insert, move the head).

The record hash is SHA-256 over the same canonical JSON that ``enclavia.broker.audit.AuditRecord`` builds in
Python (sorted keys, no whitespace). Only values that need no JSON escaping reach this function: the Python
caller checks every string against a strict character set first, so plain concatenation is canonical.
``enclavia audit verify`` recomputes every hash in Python, so any divergence would be caught at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION enclavia_audit_append(
    p_time text, p_action text, p_outcome text, p_code text, p_rev integer, p_ids text, p_async boolean
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
    body := '{"action":"' || p_action || '","code":"' || p_code || '","ids":' || p_ids
        || ',"outcome":"' || p_outcome || '","policy_revision":' || coalesce(p_rev::text, 'null')
        || ',"prev_hash":"' || prev || '","seq":' || s::text || ',"time":"' || p_time || '"}';
    h := encode(sha256(convert_to(body, 'UTF8')), 'hex');
    INSERT INTO audit_records (seq, time, action, outcome, code, policy_revision, ids, prev_hash, hash)
        VALUES (s, p_time, p_action, p_outcome, p_code, p_rev, p_ids, prev, h);
    UPDATE audit_head SET hash = h WHERE id = 1;
    RETURN QUERY SELECT s, h, prev;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS enclavia_audit_append(text, text, text, text, integer, text, boolean)"
        )
