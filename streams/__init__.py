"""The Faust worker: explode operations into item batches, process them, count progress, sink."""
