"""What the routes call: queueing submissions, preparing recipients, reading workbooks,
presenting operations and dealer jobs."""
