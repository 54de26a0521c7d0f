"""The Mapping page: the inputs, the plan table and its Qt model, notices and suggestions, the user's
fixes (key editing, completion, bulk renames, undo) and the conversion bar."""
