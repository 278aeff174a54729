"""Money: what each request costs, where each figure comes from, and what a run has spent.
Pure: prices and rows are arguments; nothing here reads a state or runs anything.

    price_table.py  the table: figures per model, tier and duration, each with its source
    pricing.py      what a request and a batch cost; the `--max-cost` check
    plan.py         the dry run: jobs by kind, low/expected/high cost, wall time
    budget.py       spent and committed while a run goes; whether the next job fits
    spent.py        a state's money for `--budget`, `status` and `report`
"""
