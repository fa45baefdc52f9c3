"""Programs and worlds that run on simsock: server architectures, client workloads and topologies."""


def ensure_record(record: dict | None, new) -> dict:
    """``record`` with every key of the template ``new()`` it lacks added (a fresh
    ``new()`` for None): a model adds its counts to the caller's dict, which several
    clients or servers may share."""
    if record is None:
        return new()
    for key, value in new().items():
        record.setdefault(key, value)
    return record
