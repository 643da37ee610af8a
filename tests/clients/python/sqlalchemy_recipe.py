"""SQLAlchemy 2 (ORM, psycopg 3): the primary key is a server default, read back by
INSERT ... RETURNING.

Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
"""

import os

from sqlalchemy import BigInteger, String, create_engine, insert, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common import check_against_server, report


class Base(DeclarativeBase):
    pass


class AuditLog(Base):
    __tablename__ = "audit_sqlalchemy"
    # autoincrement=False: not a SERIAL/IDENTITY column; server_default: left out of the INSERT,
    # fetched with RETURNING (the PostgreSQL dialect's implicit_returning).
    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, server_default=text("snowflake_nextval()")
    )
    # insert_sentinel: a unique value the client gives each row, by which SQLAlchemy matches the
    # keys RETURNING gives back to the objects. Without a sentinel it cannot trust the order of a
    # multi-row RETURNING for a server-generated key, and flush() inserts row by row.
    ref: Mapped[str] = mapped_column(String, unique=True, insert_sentinel=True)
    note: Mapped[str] = mapped_column(String)


# postgresql+psycopg: psycopg 3. prepare_threshold=None for PgBouncer in transaction mode.
url = os.environ["SNOWFLAKE_DSN"].replace("postgresql://", "postgresql+psycopg://", 1)
engine = create_engine(url, connect_args={"prepare_threshold": None})
Base.metadata.create_all(engine)  # id BIGINT DEFAULT snowflake_nextval() NOT NULL, PRIMARY KEY (id)

rows: dict[str, int] = {}
with Session(engine) as session:
    one = AuditLog(ref="sqlalchemy-0", note="one")
    session.add(one)
    session.flush()  # INSERT ... RETURNING audit_sqlalchemy.id
    rows[one.ref] = one.id

    # add_all + flush: "insertmanyvalues", one multi-row INSERT ... RETURNING, keys matched to
    # objects by the sentinel.
    many = [AuditLog(ref=f"sqlalchemy-{i}", note="batch") for i in range(1, 501)]
    session.add_all(many)
    session.flush()
    rows.update({o.ref: o.id for o in many})

    # Core: one statement, many rows, (ref, id) pairs back.
    result = session.execute(
        insert(AuditLog).returning(AuditLog.ref, AuditLog.id),
        [{"ref": f"sqlalchemy-{i}", "note": "core"} for i in range(501, 601)],
    )
    rows.update({r.ref: r.id for r in result})
    session.commit()

with engine.connect() as conn:
    check_against_server(conn.connection.cursor(), "audit_sqlalchemy", rows)
report("audit_sqlalchemy", rows)
