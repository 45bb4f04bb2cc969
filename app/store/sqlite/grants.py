"""Grants on SQLite: accounts and their registrations; each change is one transaction with its events."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from app.events import AccountDeleted, Event
from app.store.port import AccessState, Account, AccountKind, Admission, Deleted, Registration, WindowResult
from app.store.sqlite.base import (
    _ACCT_COLS,
    _ACCT_FIELDS,
    _LIVE,
    _REG_COLS,
    _REG_FIELDS,
    _REG_MARKS,
    SQLiteBase,
    _account,
    _registration,
    _registration_row,
)
from app.store.sqlite.commit import writes
from app.store.sqlite.limits import count_windows
from app.store.sqlite.notes import read_notes

# Every authenticated request runs this: built once, not per call.
_ACCESS_STATE = (
    f"SELECT {', '.join('r.' + c for c in _REG_FIELDS)}, {', '.join('a.' + c for c in _ACCT_FIELDS)}, "
    "EXISTS (SELECT 1 FROM marks m WHERE m.namespace = 'revoked' AND m.key = ? AND m.expires_at > ?) "
    "FROM registrations r JOIN accounts a ON a.id = r.account_id "
    "WHERE r.id = ? AND r.account_id = ? AND (r.expires_at IS NULL OR r.expires_at > ?) "
    "AND (a.expires_at IS NULL OR a.expires_at > ?)"
)


class SQLiteGrants(SQLiteBase):
    @writes
    def _create_registration(
        self, account: Account, reg: Registration, events: Sequence[Event], admission: Admission | None
    ) -> list[WindowResult]:
        with self._write() as conn:
            counted = (
                count_windows(conn, admission.hits, admission.now, admission.window, self._batch_windows())
                if admission
                else []
            )
            if all(c.allowed for c in counted):
                self._insert_account(conn, account, reg)
                self._append(conn, events)
            return counted

    async def create_registration(
        self,
        account: Account,
        registration: Registration,
        events: Sequence[Event],
        admission: Admission | None = None,
    ) -> list[WindowResult]:
        return await self._run(self._create_registration, account, registration, events, admission)

    def _get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        row = self.conn.execute(
            f"SELECT {_REG_COLS} FROM registrations WHERE id = ? AND account_id = ? AND {_LIVE}",
            (registration_id, account_id, now),
        ).fetchone()
        return _registration(row) if row else None

    async def get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        return await self._run(self._get_registration, account_id, registration_id, now)

    def _get_account(self, account_id: str, now: float) -> Account | None:
        row = self.conn.execute(
            f"SELECT {_ACCT_COLS} FROM accounts WHERE id = ? AND {_LIVE}", (account_id, now)
        ).fetchone()
        return _account(row) if row else None

    async def get_account(self, account_id: str, now: float) -> Account | None:
        return await self._run(self._get_account, account_id, now)

    def _list_accounts(self, after: str | None, limit: int, now: float, kind: str | None) -> list[Account]:
        # The primary key is the id (WITHOUT ROWID): a range scan in id order, BINARY collation (bytewise).
        rows = self.conn.execute(
            f"SELECT {_ACCT_COLS} FROM accounts WHERE id > ? AND {_LIVE} AND (? IS NULL OR kind = ?) "
            "ORDER BY id LIMIT ?",
            (after or "", now, kind, kind, max(0, limit)),
        ).fetchall()
        return [_account(r) for r in rows]

    async def list_accounts(
        self, after: str | None, limit: int, now: float, kind: AccountKind | None = None
    ) -> list[Account]:
        return await self._run(self._list_accounts, after, limit, now, kind)

    def _registrations_of(self, account_id: str, now: float) -> list[Registration]:
        rows = self.conn.execute(
            f"SELECT {_REG_COLS} FROM registrations WHERE account_id = ? AND {_LIVE} ORDER BY created_at, id",
            (account_id, now),
        ).fetchall()
        return [_registration(r) for r in rows]

    async def registrations_of(self, account_id: str, now: float) -> list[Registration]:
        return await self._run(self._registrations_of, account_id, now)

    def _access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float, notes: bool
    ) -> AccessState | None:
        # One statement is one consistent snapshot: registration, account and the token's mark.
        row = self.conn.execute(_ACCESS_STATE, (token_id, now, registration_id, account_id, now, now)).fetchone()
        if row is None:
            return None
        nr, na = len(_REG_FIELDS), len(_ACCT_FIELDS)
        return AccessState(
            registration=_registration(row[:nr]),
            account=_account(row[nr : nr + na]),
            token_revoked=bool(row[-1]),
            # Reads run on the loop thread with nothing in between: the same snapshot as the row above.
            notes=read_notes(self.conn, account_id, now) if notes else None,
        )

    async def access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float, *, notes: bool = False
    ) -> AccessState | None:
        return await self._run(self._access_state, account_id, registration_id, token_id, now, notes)

    @writes
    def _revoke_registration(self, account_id: str, registration_id: str, now: float, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE registrations SET revoked_at = ? "
                f"WHERE id = ? AND account_id = ? AND revoked_at IS NULL AND {_LIVE}",
                (int(now), registration_id, account_id, now),
            )
            if cur.rowcount != 1:
                return False
            self._append(conn, events)
            return True

    @writes
    def _put_registration(self, reg: Registration, now: float, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            live = conn.execute(f"SELECT 1 FROM accounts WHERE id = ? AND {_LIVE}", (reg.account_id, now)).fetchone()
            if live is None:
                return False
            conn.execute("DELETE FROM registrations WHERE id = ? AND account_id = ?", (reg.id, reg.account_id))
            conn.execute(f"INSERT INTO registrations ({_REG_COLS}) VALUES ({_REG_MARKS})", _registration_row(reg))
            self._append(conn, events)
            return True

    async def put_registration(self, registration: Registration, now: float, events: Sequence[Event]) -> bool:
        return await self._run(self._put_registration, registration, now, events)

    async def revoke_registration(
        self, account_id: str, registration_id: str, now: float, events: Sequence[Event]
    ) -> bool:
        return await self._run(self._revoke_registration, account_id, registration_id, now, events)

    @writes
    def _rotate_refresh(
        self,
        account_id: str,
        registration_id: str,
        family: str,
        seq: int,
        expires_at: int,
        now: float,
        events: Sequence[Event],
    ) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE registrations SET refresh_seq = refresh_seq + 1, refresh_rotated_at = ?, "
                "refresh_expires_at = ? WHERE id = ? AND account_id = ? AND refresh_family = ? AND refresh_seq = ? "
                f"AND revoked_at IS NULL AND {_LIVE}",
                (int(now), expires_at, registration_id, account_id, family, seq, now),
            )
            if cur.rowcount != 1:
                return False
            self._append(conn, events)
            return True

    async def rotate_refresh(
        self,
        account_id: str,
        registration_id: str,
        family: str,
        seq: int,
        expires_at: int,
        now: float,
        events: Sequence[Event],
    ) -> bool:
        args = (account_id, registration_id, family, seq, expires_at, now, events)
        return await self._run(self._rotate_refresh, *args)

    @writes
    def _set_not_before(self, account_id: str, registration_id: str, not_before: int, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "SELECT coalesce(not_before, 0) FROM registrations WHERE id = ? AND account_id = ?",
                (registration_id, account_id),
            ).fetchone()
            if row is None:
                return False
            if not_before > row[0]:  # only a move is a change (and has an event)
                conn.execute(
                    "UPDATE registrations SET not_before = ? WHERE id = ? AND account_id = ?",
                    (not_before, registration_id, account_id),
                )
                self._append(conn, events)
            return True

    async def set_not_before(
        self, account_id: str, registration_id: str, not_before: int, events: Sequence[Event]
    ) -> bool:
        return await self._run(self._set_not_before, account_id, registration_id, not_before, events)

    @writes
    def _delete_account(self, account_id: str, now: float, event: AccountDeleted) -> Deleted | None:
        with self._write() as conn:
            # An expired account is already absent: its deletion belongs to the sweeper (and its event).
            if not conn.execute(f"SELECT 1 FROM accounts WHERE id = ? AND {_LIVE}", (account_id, now)).fetchone():
                return None
            deleted = self._delete_accounts(conn, [account_id])
            if not deleted:
                return None
            counts = {"registrations": deleted[0].registrations, "notes": deleted[0].notes}
            self._append(conn, [msgspec.structs.replace(event, **counts)])
            return deleted[0]

    async def delete_account(self, account_id: str, now: float, event: AccountDeleted) -> Deleted | None:
        return await self._run(self._delete_account, account_id, now, event)
