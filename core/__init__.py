"""The conversion and verification core. No Qt here, ever: the CLI and the window both sit on it."""
