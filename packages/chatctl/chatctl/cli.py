"""`chatctl`: the operator's command line (database, organisations, users, budgets, tokens).

It talks to PostgreSQL as the tables' owner, through the one public module of each service that
owns them (`chat_gateway.admin`: organisations, users, tokens; `chat_history.admin`: budgets),
and to RabbitMQ with the encoder every service uses.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import field_validator
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from chat_contracts.base import UserRef
from chat_gateway import admin as identity
from chat_gateway.admin import GatewaySettings
from chat_history import admin as history
from chat_runtime.settings import DEFAULT_DATABASE_ADMIN_URL, asyncpg_url
from chatctl import infra

MIN_PASSWORD_LENGTH = 8
DEMO_ORG = "Demo Org"


class ChatctlSettings(GatewaySettings):
    # chatctl works as the tables' owner: it creates the database, migrates and administers.
    # The services connect with DATABASE_URL, a role that row-level security applies to.
    database_admin_url: str = DEFAULT_DATABASE_ADMIN_URL

    @field_validator("database_admin_url")
    @classmethod
    def _asyncpg_admin(cls, value: str) -> str:
        return asyncpg_url(value)  # e.g. CloudNativePG's `uri` secret: postgresql://...


DEMO_EMAIL = "demo@example.com"
DEMO_NAME = "Demo User"


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not an amount in dollars: {value!r}") from exc
    if amount < 0:
        raise argparse.ArgumentTypeError("a budget cannot be negative")
    return amount


async def _in_transaction(
    settings: ChatctlSettings, work: Callable[[AsyncConnection], Awaitable[Any]]
) -> Any:
    engine = create_async_engine(settings.database_admin_url)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def cmd_db_create(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    done = asyncio.run(infra.create_database(settings.database_admin_url, settings.database_url))
    print("; ".join(done) if done else "the database and the services' role exist")


def cmd_db_upgrade(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    role = infra.app_role(settings.database_url)
    if role == infra.app_role(settings.database_admin_url):
        role = None  # one role for everything: nothing to grant (and no row-level protection)
    identity.upgrade(settings.database_admin_url, role)
    history.upgrade(settings.database_admin_url, role)
    print("migrations applied (identity, chat)" + (f"; granted to {role}" if role else ""))


def cmd_check(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    problems = asyncio.run(infra.check(settings.amqp_url, settings.database_admin_url))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("RabbitMQ and PostgreSQL answer")


Command = Callable[[argparse.Namespace, ChatctlSettings], None]


def in_one_transaction(
    body: Callable[[argparse.Namespace, AsyncConnection], Awaitable[None]],
) -> Command:
    """A command whose work is one transaction as the tables' owner."""

    def command(args: argparse.Namespace, settings: ChatctlSettings) -> None:
        asyncio.run(_in_transaction(settings, lambda conn: body(args, conn)))

    return command


@in_one_transaction
async def cmd_org_create(args: argparse.Namespace, conn: AsyncConnection) -> None:
    org_id = await identity.create_org(conn, args.name)
    await history.set_budget(conn, org_id, args.budget_usd)
    print(f"created org {args.name!r} ({org_id}), monthly budget ${args.budget_usd}")


@in_one_transaction
async def cmd_budget_set(args: argparse.Namespace, conn: AsyncConnection) -> None:
    org_id = await identity.org_id_by_name(conn, args.org)
    await history.set_budget(conn, org_id, args.usd)
    print(f"monthly budget of {args.org!r} is now ${args.usd}")


def _password(args: argparse.Namespace) -> str | None:
    """--password, else a prompt when interactive, else none (the user signs in by token only)."""
    if args.password is not None:
        password: str = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password (empty for none): ")
        if password and getpass.getpass("Again: ") != password:
            raise identity.IdentityError("the passwords do not match")
    else:
        return None
    if password and len(password) < MIN_PASSWORD_LENGTH:
        raise identity.IdentityError(f"a password needs {MIN_PASSWORD_LENGTH}+ characters")
    return password or None


def cmd_user_create(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    password = _password(args)

    async def work(conn: AsyncConnection) -> None:
        org_id = await identity.org_id_by_name(conn, args.org)
        user = await identity.create_user(conn, org_id, args.email, args.name, password)
        how = "with a password" if password else "without a password (token sign-in only)"
        print(f"created user {user.email} ({user.user_id}) in {args.org!r}, {how}")

    asyncio.run(_in_transaction(settings, work))


def cmd_user_password(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    password = _password(args)
    if password is None:
        raise identity.IdentityError("give --password (or run interactively)")

    async def work(conn: AsyncConnection) -> None:
        await identity.set_password(conn, args.email, password)
        print(f"password of {args.email} changed")

    asyncio.run(_in_transaction(settings, work))


def cmd_user_disable(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    disable = args.command_name == "disable"

    async def work(conn: AsyncConnection) -> UserRef:
        return await identity.set_disabled(conn, args.email, disable)

    user = asyncio.run(_in_transaction(settings, work))
    if disable:
        # Every gateway replica closes the user's sockets; their tokens are refused from now on.
        asyncio.run(infra.broadcast_sign_out(settings.amqp_url, settings.broker_prefix, user))
    print(f"{args.email} is {'disabled' if disable else 'enabled'}")


def cmd_token(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    async def work(conn: AsyncConnection) -> str:
        user = await identity.user_by_email(conn, args.email)
        return identity.mint_token(user, settings, args.ttl)

    print(asyncio.run(_in_transaction(settings, work)))


def cmd_demo(args: argparse.Namespace, settings: ChatctlSettings) -> None:
    """Create a demo org and user when there are no users yet, and say how to use them."""

    password = secrets.token_urlsafe(12)

    async def work(conn: AsyncConnection) -> bool:
        if await identity.count_users(conn) > 0:
            return False
        org_id = await identity.create_org(conn, DEMO_ORG)
        await history.set_budget(conn, org_id, Decimal(10))
        await identity.create_user(conn, org_id, DEMO_EMAIL, DEMO_NAME, password)
        return True

    if not asyncio.run(_in_transaction(settings, work)):
        print("users exist already (new password: uv run chatctl user password --email EMAIL)")
        return
    print(
        f"created org {DEMO_ORG!r} (budget $10/month) and user {DEMO_NAME}.\n"
        f"  sign in at the chat page with  email: {DEMO_EMAIL}  password: {password}\n"
        f"  a token for API clients:        uv run chatctl token --email {DEMO_EMAIL}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatctl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the database").add_subparsers(dest="db", required=True)
    db.add_parser("create", help="create the database if it is missing").set_defaults(
        func=cmd_db_create
    )
    db.add_parser("upgrade", help="apply every service's migrations").set_defaults(
        func=cmd_db_upgrade
    )
    commands.add_parser("check", help="check that RabbitMQ and PostgreSQL answer").set_defaults(
        func=cmd_check
    )
    commands.add_parser("demo", help="create a demo org and user if there are none").set_defaults(
        func=cmd_demo
    )

    org = commands.add_parser("org", help="organisations").add_subparsers(dest="org", required=True)
    org_create = org.add_parser("create", help="create an organisation")
    org_create.add_argument("name")
    org_create.add_argument(
        "--budget-usd", type=_usd, default=Decimal(10), help="monthly LLM budget"
    )
    org_create.set_defaults(func=cmd_org_create)

    budget = commands.add_parser("budget", help="LLM budgets").add_subparsers(
        dest="budget", required=True
    )
    budget_set = budget.add_parser("set", help="set an organisation's monthly LLM budget")
    budget_set.add_argument("--org", required=True)
    budget_set.add_argument("--usd", type=_usd, required=True)
    budget_set.set_defaults(func=cmd_budget_set)

    user = commands.add_parser("user", help="users").add_subparsers(dest="user", required=True)
    user_create = user.add_parser("create", help="create a user")
    user_create.add_argument("--org", required=True)
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--name", required=True)
    user_create.add_argument("--password", help="else prompted for when interactive")
    user_create.set_defaults(func=cmd_user_create)
    user_password = user.add_parser("password", help="set a user's password")
    user_password.add_argument("--email", required=True)
    user_password.add_argument("--password", help="else prompted for")
    user_password.set_defaults(func=cmd_user_password)
    for name, help_text in (
        ("disable", "disable a user: refuse their sign-ins and tokens, close their sockets"),
        ("enable", "enable a disabled user"),
    ):
        toggle = user.add_parser(name, help=help_text)
        toggle.add_argument("--email", required=True)
        toggle.set_defaults(func=cmd_user_disable, command_name=name)

    token = commands.add_parser("token", help="print an access token (JWT) for a user")
    token.add_argument("--email", required=True)
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = ChatctlSettings()
    try:
        args.func(args, settings)
    except identity.IdentityError as exc:
        print(f"chatctl: {exc}", file=sys.stderr)
        sys.exit(1)
    except (OSError, infra.Unreachable) as exc:
        print(f"chatctl: {exc}", file=sys.stderr)
        sys.exit(2)
