"""A run's state: the only package that speaks SQL. Every write is durable before the action
that depends on it (a create, a rename, an index line) is taken.

    db.py           the database seam: what state/ asks of a connection, on either database
    migrations.py   the schema as named migrations, each applied once, in order, on both
    kept_counts.py  the counts `status` reads, kept on PostgreSQL without workers waiting
    sqlite.py       the default database: one file in WAL mode, group commit, synced commits
    postgres.py     a PostgreSQL database: one schema per run, psycopg's errors as ours
    connect.py      which database a state is in (a file or a postgresql:// URL), opened
    records.py      what the state holds, as values (JobRecord, CheckRecord)
    changes.py      every change a run makes to a job, as a typed value
    store.py        the jobs and their lifecycle: `apply` a change, load a manifest's jobs
    checks.py       what each downloaded video turned out to be
    inputs.py       what the jobs were loaded from: files, images, skipped rows
    lookups.py      the evidence of every look-up by external id
    spending.py     money aggregates over the jobs
    copy.py         a run's state from one database to another, checked by counts and hashes
    runlock.py      one process per state, and one state per run folder, at a time
    claims.py       workers of one run on PostgreSQL: job leases, epochs, takeovers
    ledger.py       the account ledger: every create any run on the machine sent, and the runs
    leases.py       an account's slots shared by its runs, leased in the ledger
"""
