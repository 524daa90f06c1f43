"""The REST routes, one module per concern; they validate, authorise and answer, and leave
the work to :mod:`api.services`."""
