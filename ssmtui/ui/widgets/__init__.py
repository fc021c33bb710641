"""Reusable widgets of the fleet screen; they post intent messages, screens decide."""
