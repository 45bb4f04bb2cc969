"""People on SQLite: users, provider delegations, OpenID Connect sign-in and browser sessions."""

from __future__ import annotations

from collections.abc import Sequence

from app.events import Event
from app.store.port import Account, Delegation, Registration, User
from app.store.sqlite.base import _ACCT_COLS, _ACCT_MARKS, _LIVE, SQLiteBase, _account, _account_row, _user
from app.store.sqlite.commit import writes


class SQLitePeople(SQLiteBase):
    def _find_user_by_email(self, email: str) -> User | None:
        row = self.conn.execute("SELECT id, email, account_id, created_at FROM users WHERE email = ?", (email,))
        found = row.fetchone()
        return _user(found) if found else None

    async def find_user_by_email(self, email: str) -> User | None:
        return await self._run(self._find_user_by_email, email)

    def _get_user(self, user_id: str) -> User | None:
        row = self.conn.execute("SELECT id, email, account_id, created_at FROM users WHERE id = ?", (user_id,))
        found = row.fetchone()
        return _user(found) if found else None

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(self._get_user, user_id)

    async def get_delegation(self, issuer: str, subject: str) -> Delegation | None:
        return await self._run(self._get_delegation, issuer, subject)

    @writes
    def _create_user(
        self, user: User, account: Account, reg: Registration, delegation: Delegation, events: Sequence[Event]
    ) -> bool:
        with self._write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM users WHERE email = ? UNION ALL "
                "SELECT 1 FROM delegations WHERE issuer = ? AND subject = ?",
                (user.email, delegation.issuer, delegation.subject),
            ).fetchone()
            if taken:
                return False
            self._insert_account(conn, account, reg)
            conn.execute(
                "INSERT INTO users (id, email, account_id, created_at) VALUES (?, ?, ?, ?)",
                (user.id, user.email, user.account_id, user.created_at),
            )
            self._insert_delegation(conn, delegation)
            self._append(conn, events)
            return True

    async def create_user(
        self, user: User, account: Account, registration: Registration, delegation: Delegation, events: Sequence[Event]
    ) -> bool:
        return await self._run(self._create_user, user, account, registration, delegation, events)

    @writes
    def _sign_in_user(self, issuer: str, subject: str, email: str, new_user: User, new_account: Account) -> User:
        with self._write() as conn:
            row = conn.execute(
                "SELECT u.id, u.email, u.account_id, u.created_at FROM logins l JOIN users u ON u.id = l.user_id "
                "WHERE l.issuer = ? AND l.subject = ?",
                (issuer, subject),
            ).fetchone()
            if row is not None:
                return _user(row)
            user = self._find_user_by_email(email)
            if user is None:
                user = new_user
                conn.execute(f"INSERT INTO accounts ({_ACCT_COLS}) VALUES ({_ACCT_MARKS})", _account_row(new_account))
                conn.execute(
                    "INSERT INTO users (id, email, account_id, created_at) VALUES (?, ?, ?, ?)",
                    (user.id, user.email, user.account_id, user.created_at),
                )
            conn.execute("INSERT INTO logins (issuer, subject, user_id) VALUES (?, ?, ?)", (issuer, subject, user.id))
            return user

    async def sign_in_user(self, issuer: str, subject: str, email: str, new_user: User, new_account: Account) -> User:
        return await self._run(self._sign_in_user, issuer, subject, email, new_user, new_account)

    def _owned_accounts(self, user_id: str, now: float) -> list[Account]:
        rows = self.conn.execute(
            f"SELECT {_ACCT_COLS} FROM accounts WHERE owner = ? AND {_LIVE} ORDER BY created_at, id", (user_id, now)
        ).fetchall()
        return [_account(r) for r in rows]

    async def owned_accounts(self, user_id: str, now: float) -> list[Account]:
        return await self._run(self._owned_accounts, user_id, now)

    @writes
    def _put_session(self, session_hash: str, data: bytes, expires_at: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sessions (id_hash, data, expires_at) VALUES (?, ?, ?)",
                (session_hash, data, expires_at),
            )

    async def put_session(self, session_hash: str, data: bytes, expires_at: float) -> None:
        await self._run(self._put_session, session_hash, data, expires_at)

    def _get_session(self, session_hash: str, now: float) -> bytes | None:
        row = self.conn.execute(
            "SELECT data FROM sessions WHERE id_hash = ? AND expires_at > ?", (session_hash, now)
        ).fetchone()
        return bytes(row[0]) if row else None

    async def get_session(self, session_hash: str, now: float) -> bytes | None:
        return await self._run(self._get_session, session_hash, now)

    @writes
    def _delete_session(self, session_hash: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (session_hash,))

    async def delete_session(self, session_hash: str) -> None:
        await self._run(self._delete_session, session_hash)
