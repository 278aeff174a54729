"""Looking at a run: what `status`, `report` and `verify` say, and which run a command means.
Reads the state and the run folder; changes nothing but the files it writes (report.json).

    targets.py      MANIFEST, RUN or STATE: the run a command names
    qa_summary.py   what the video checks found across a run
    overview.py     what `status` shows: counts, failures, unknown jobs, QA, money
    report.py       the run report: counts, failures by reason, cost, money, time, slot use
    verify.py       does the folder hold exactly the videos its index and state promise?
    accounts.py     what the account ledger knows: every run, each account's slots and money
"""
