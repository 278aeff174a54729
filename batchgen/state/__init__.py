"""A run's state: the only package that speaks SQL. Every write is durable before the action
that depends on it (a create, a rename, an index line) is taken.

    migrations.py   the schema as named migrations, each applied once, in order
    db.py           the connection: WAL, group commit, synced commits; the database seam
    records.py      what the state holds, as values (JobRecord, CheckRecord)
    changes.py      every change a run makes to a job, as a typed value
    store.py        the jobs and their lifecycle: `apply` a change, load a manifest's jobs
    checks.py       what each downloaded video turned out to be
    inputs.py       what the jobs were loaded from: files, images, skipped rows
    lookups.py      the evidence of every look-up by external id
    spending.py     money aggregates over the jobs
    runlock.py      one process per state, and one state per run folder, at a time
    ledger.py       the account ledger: every create any run on the machine sent, and the runs
    leases.py       an account's slots shared by its runs, leased in the ledger
"""
