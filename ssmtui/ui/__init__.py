"""The Textual user interface (the only package that imports textual).

Start it with :func:`ssmtui.ui.app.create_app`; it reads the fleet through a
:class:`ssmtui.ui.source.FleetSource` and never calls AWS itself.
"""
