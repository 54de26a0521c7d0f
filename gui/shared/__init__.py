"""Widgets and helpers every page uses: path fields and message bars, elided and clamped labels,
plots, theme and icons, number formatting, and the event-loop heartbeat."""
