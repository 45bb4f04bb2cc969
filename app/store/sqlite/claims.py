"""Claims on SQLite: the claim ceremony, compare-and-set on the stored version inside one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import msgspec

from app.events import Event
from app.store.port import Account, Claim, CodeBudget, CodeCheck, Delegation, Registration, code_step
from app.store.sqlite.base import _CLAIM_JSON, _LIVE, _REG_COLS, _REG_MARKS, SQLiteBase, _registration_row
from app.store.sqlite.commit import writes


class SQLiteClaims(SQLiteBase):
    def _put_claim(self, conn: sqlite3.Connection, claim: Claim) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO claims (account_id, registration_id, version, expires_at, data) "
            "VALUES (?, ?, ?, ?, ?)",
            (claim.account_id, claim.registration_id, claim.version, claim.expires_at, _CLAIM_JSON.encode(claim)),
        )

    def _stored_claim_version(self, conn: sqlite3.Connection, claim: Claim) -> int | None:
        row = conn.execute(
            "SELECT version FROM claims WHERE account_id = ? AND registration_id = ?",
            (claim.account_id, claim.registration_id),
        ).fetchone()
        return None if row is None else int(row[0])

    def _get_claim(self, account_id: str, registration_id: str, now: float) -> Claim | None:
        row = self.conn.execute(
            f"SELECT data FROM claims WHERE account_id = ? AND registration_id = ? AND {_LIVE} "
            "AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = claims.account_id "
            "AND (a.expires_at IS NULL OR a.expires_at > ?))",
            (account_id, registration_id, now, now),
        ).fetchone()
        return msgspec.json.decode(row[0], type=Claim) if row else None

    async def get_claim(self, account_id: str, registration_id: str, now: float) -> Claim | None:
        return await self._run(self._get_claim, account_id, registration_id, now)

    @writes
    def _save_claim(self, claim: Claim, expected_version: int | None, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (claim.account_id,)).fetchone():
                return False
            if self._stored_claim_version(conn, claim) != expected_version:
                return False
            self._put_claim(conn, claim)
            self._append(conn, events)
            return True

    async def save_claim(self, claim: Claim, expected_version: int | None, events: Sequence[Event]) -> bool:
        return await self._run(self._save_claim, claim, expected_version, events)

    @writes
    def _save_pending_link(
        self, delegation: Delegation, reg: Registration, claim: Claim, events: Sequence[Event], replace_active: bool
    ) -> bool:
        with self._write() as conn:
            current = self._get_delegation(delegation.issuer, delegation.subject)
            if current is not None and current.status == "active" and not replace_active:
                return False
            conn.execute(
                "DELETE FROM delegations WHERE issuer = ? AND subject = ?", (delegation.issuer, delegation.subject)
            )
            conn.execute("DELETE FROM registrations WHERE id = ? AND account_id = ?", (reg.id, reg.account_id))
            conn.execute(f"INSERT INTO registrations ({_REG_COLS}) VALUES ({_REG_MARKS})", _registration_row(reg))
            self._insert_delegation(conn, delegation)
            self._put_claim(conn, claim)
            self._append(conn, events)
            return True

    async def save_pending_link(
        self,
        delegation: Delegation,
        registration: Registration,
        claim: Claim,
        events: Sequence[Event],
        *,
        replace_active: bool = False,
    ) -> bool:
        return await self._run(self._save_pending_link, delegation, registration, claim, events, replace_active)

    @writes
    def _check_code(
        self,
        account_id: str,
        registration_id: str,
        digests: Mapping[str, str],
        now: float,
        budget: CodeBudget,
        ended: Sequence[Event],
    ) -> CodeCheck:
        with self._write() as conn:
            claim = self._get_claim(account_id, registration_id, now)
            if claim is None:
                return CodeCheck(claim=None)
            step = code_step(claim, digests, now, budget)
            if step.claim is not claim:
                assert step.claim is not None
                self._put_claim(conn, step.claim)
                if claim.attempts and not step.claim.attempts:  # the charge spent a budget
                    gone = {a.id for a in claim.attempts}
                    self._append(conn, [e for e in ended if getattr(e, "attempt_id", None) in gone])
            return step

    async def check_code(
        self,
        account_id: str,
        registration_id: str,
        digests: Mapping[str, str],
        now: float,
        budget: CodeBudget,
        ended: Sequence[Event] = (),
    ) -> CodeCheck:
        args = (account_id, registration_id, dict(digests), now, budget, ended)
        return await self._run(self._check_code, *args)

    @writes
    def _complete_claim(
        self,
        claim: Claim,
        expected_version: int,
        account: Account,
        reg: Registration,
        delegation: Delegation | None,
        events: Sequence[Event],
    ) -> bool:
        with self._write() as conn:
            if self._stored_claim_version(conn, claim) != expected_version:
                return False
            cur = conn.execute(
                "UPDATE accounts SET kind = ?, expires_at = ?, quota_notes = ?, quota_note_bytes = ?, owner = ? "
                "WHERE id = ?",
                (
                    account.kind,
                    account.expires_at,
                    account.quota_notes,
                    account.quota_note_bytes,
                    account.owner,
                    account.id,
                ),
            )
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM registrations WHERE id = ? AND account_id = ?", (reg.id, reg.account_id))
            conn.execute(f"INSERT INTO registrations ({_REG_COLS}) VALUES ({_REG_MARKS})", _registration_row(reg))
            if delegation is not None:
                conn.execute(
                    "DELETE FROM delegations WHERE issuer = ? AND subject = ?", (delegation.issuer, delegation.subject)
                )
                self._insert_delegation(conn, delegation)
            self._put_claim(conn, claim)
            self._append(conn, events)
            return True

    async def complete_claim(
        self,
        claim: Claim,
        expected_version: int,
        account: Account,
        registration: Registration,
        delegation: Delegation | None,
        events: Sequence[Event],
    ) -> bool:
        return await self._run(self._complete_claim, claim, expected_version, account, registration, delegation, events)
