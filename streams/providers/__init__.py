"""Channel providers: one adapter per channel behind one interface."""
