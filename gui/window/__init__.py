"""The window itself: the main window, its menus and commands, the workspace of the open checkpoint,
background tasks and their slots, the log and messages, and the secondary tabs."""
