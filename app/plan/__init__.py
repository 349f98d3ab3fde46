"""The plan row: what each event does to it (``transitions``), its one writer (``repository``)."""
