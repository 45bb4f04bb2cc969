"""Records and helpers the store contract suite shares (one test file per port: tests/store/test_*.py)."""

from __future__ import annotations

from app import events as ev
from app.store.port import Account, Attempt, Claim, CodeBudget, Delegation, Note, Registration, Store, User

T0 = 1_800_000_000  # a multiple of every window used below, so bucket boundaries fall on round numbers
TTL = 3600
WINDOW = 100.0  # seconds: the rate windows of the Limits contract


def make_account(
    account_id: str = "acct_1",
    *,
    kind: str = "temporary",
    created_at: int = T0,
    expires_at: int | None = T0 + TTL,
    quota_notes: int = 25,
    quota_note_bytes: int = 4096,
    owner: str | None = None,
) -> Account:
    return Account(
        id=account_id,
        kind=kind,  # type: ignore[arg-type]
        created_at=created_at,
        expires_at=expires_at,
        quota_notes=quota_notes,
        quota_note_bytes=quota_note_bytes,
        owner=owner,
    )


def make_registration(
    registration_id: str = "reg_1",
    account_id: str = "acct_1",
    *,
    expires_at: int | None = T0 + TTL,
    **extra: object,
) -> Registration:
    values: dict[str, object] = {
        "id": registration_id,
        "type": "anonymous",
        "account_id": account_id,
        "scopes": ("notes:read", "notes:write"),
        "created_at": T0,
        "expires_at": expires_at,
    }
    values.update(extra)
    return Registration(**values)  # type: ignore[arg-type]


def created_event(account: Account, registration: Registration) -> list[ev.Event]:
    return [
        ev.new(
            ev.RegistrationCreated,
            float(account.created_at),
            account.id,
            registration.id,
            method="anonymous",
            scopes=registration.scopes,
        )
    ]


def revoked(account_id: str, registration_id: str, at: float, by: str = "agent") -> list[ev.Event]:
    return [ev.new(ev.RegistrationRevoked, at, account_id, registration_id, by=by)]


def deleted_event(account_id: str, registration_id: str | None, at: float) -> ev.AccountDeleted:
    return ev.new(ev.AccountDeleted, at, account_id, registration_id, by="agent", registrations=0, notes=0)


async def seed(
    store: Store,
    account_id: str = "acct_1",
    registration_id: str | None = None,
    *,
    account_expires_at: int | None = T0 + TTL,
    registration_expires_at: int | None = None,
    kind: str = "temporary",
    quota_notes: int = 25,
) -> tuple[Account, Registration]:
    account = make_account(account_id, kind=kind, expires_at=account_expires_at, quota_notes=quota_notes)
    registration = make_registration(
        registration_id or f"reg_of_{account_id}",
        account_id,
        expires_at=account_expires_at if registration_expires_at is None else registration_expires_at,
    )
    await store.create_registration(account, registration, created_event(account, registration))
    return account, registration


def note(note_id: str, account_id: str = "acct_1", *, created_at: int = T0, text: str | None = None) -> Note:
    return Note(id=note_id, account_id=account_id, text=text or f"text of {note_id}", created_at=created_at)


async def all_events(store: Store) -> list[ev.Event]:
    return await store.events("", 10_000)


ISS = "https://agents.example"


def make_user_records(
    user_id: str = "usr_1", email: str = "ada@example.com", subject: str = "sub-1", *, status: str = "active"
) -> tuple[User, Account, Registration, Delegation]:
    account = make_account(f"acct_{user_id}", kind="persistent", expires_at=None)
    registration = make_registration(f"reg_{user_id}", account.id, expires_at=None, type="identity_assertion")
    user = User(id=user_id, email=email, account_id=account.id, created_at=T0)
    delegation = Delegation(
        issuer=ISS,
        subject=subject,
        user_id=user_id,
        account_id=account.id,
        registration_id=registration.id,
        status=status,
        created_at=T0,
    )  # type: ignore[arg-type]
    return user, account, registration, delegation


def user_event(user: User) -> list[ev.Event]:
    return [
        ev.new(
            ev.RegistrationCreated,
            float(T0),
            user.account_id,
            f"reg_{user.id}",
            method="identity_assertion",
            scopes=("notes:read",),
            provider=ISS,
        )
    ]


OIDC = "https://login.example"


def signin_records(user_id: str, email: str) -> tuple[User, Account]:
    account = make_account(f"acct_{user_id}", kind="persistent", expires_at=None, owner=user_id)
    return User(id=user_id, email=email, account_id=account.id, created_at=T0), account


def make_claim(account_id: str = "acct_1", registration_id: str = "reg_of_acct_1", **extra: object) -> Claim:
    values: dict[str, object] = {
        "account_id": account_id,
        "registration_id": registration_id,
        "expires_at": T0 + TTL,
        "scopes_after": ("notes:read", "notes:write", "notes:delete"),
    }
    values.update(extra)
    return Claim(**values)  # type: ignore[arg-type]


def attempt(attempt_id: str = "att_1", **extra: object) -> Attempt:
    values: dict[str, object] = {"id": attempt_id, "link_hash": "h-" + attempt_id, "expires_at": T0 + 600}
    values.update(extra)
    return Attempt(**values)  # type: ignore[arg-type]


def claimed_event(account: Account) -> list[ev.Event]:
    return [ev.new(ev.ClaimCompleted, float(T0), account.id, None, user_id="usr_1", scopes=("notes:read",))]


BUDGET = CodeBudget(per_window=5, per_claim=15)


def shown(attempt_id: str = "att_1", code: str = "right", **extra: object) -> Attempt:
    """A confirmed attempt whose code (digest ``code``) lives until T0 + 600."""
    return attempt(attempt_id, confirmed_by="usr_1", code_hash=code, code_expires_at=T0 + 600, **extra)
