"""The Speechport window (PySide6): views, Qt models and workers over `speechport.core`."""
