"""A database the TypeScript better-ccflare built keeps working under the real server.

The database is built from the reference's schema and rows (the fixture the database package's
migration tests use), then the server is started on it, migrating it in place.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
from sqlite_utils import Database

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

REFERENCE_SQL = Path(__file__).parents[1] / "packages/database/tests/reference_schema.sql"

# A key the reference created: scrypt with the salt passed as the hex *string*, as
# packages/types/src/api-key.ts calls it. Produced by:
#   node -e "const c=require('crypto'); const key='btr-Mig7ratedFromTheTypeScriptProxy1';
#     const salt='5f3c9a0e7b214d8c96e1a2b3c4d5e6f7';
#     console.log(salt + ':' + c.scryptSync(key, salt, 64).toString('hex'))"
REFERENCE_KEY = "btr-Mig7ratedFromTheTypeScriptProxy1"
REFERENCE_HASH = (
    "5f3c9a0e7b214d8c96e1a2b3c4d5e6f7:"
    "815f8f0a13864041704ff9d645bcc6d8e6672eebaf34b06b3eb7022612f8d29d"
    "63516d660035215769397e5ab747d1b7b1df7c33480aca225313dfa63ad2ee26"
)


def build_reference_database(tmp_path: Path) -> None:
    """The reference's database where the server will look for it, with a key the reference
    hashed; its own accounts are paused so no request leaves for the real upstreams."""
    path = tmp_path / "xdg" / "better-ccflare" / "better-ccflare.db"
    path.parent.mkdir(parents=True)
    db = Database(path)
    try:
        db.conn.executescript(REFERENCE_SQL.read_text())
        db.conn.execute("UPDATE accounts SET paused = 1")
        db.conn.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL, 0, 1, 'api-only')",
            ("key-migrated", "migrated", REFERENCE_HASH, REFERENCE_KEY[-8:], 1761000000000),
        )
        db.conn.commit()
    finally:
        db.close()


async def test_a_key_the_reference_hashed_authenticates_after_migration(tmp_path: Path) -> None:
    build_reference_database(tmp_path)
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json("migrated")))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            async with anthropic.AsyncAnthropic(
                base_url=url, api_key=REFERENCE_KEY, max_retries=0
            ) as client:
                reply = await client.messages.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                )
            assert reply.content[0].type == "text"
            assert reply.content[0].text == "migrated"
            assert upstream.requests[0].headers["x-api-key"] == "sk-ant-api03-a"
