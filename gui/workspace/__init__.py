"""The open checkpoint's state that every page shares (the workspace, its undoable fixes, the models kept
loaded) and the plumbing of background work: tasks, their slots and the jobs they run."""
