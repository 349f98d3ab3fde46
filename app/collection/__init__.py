"""Collection: the one place that charges an invoice (SPEC §6).

Purchases, ``POST .../invoices/{id}/pay`` and the billing run call ``Collector``; nobody else
talks to the gateway.
"""
