"""L1 side: batch contract binding, poster, watcher."""
