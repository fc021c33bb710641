"""ssmtui: a terminal UI and CLI for AWS Systems Manager Session Manager."""

__version__ = "0.1.0"

#: The ClientVersion we report in the handshake. It must be a bare dotted number above 1.2.331.0
#: so the agent picks smux for LocalPortForwarding and disables smux keepalive (PROTOCOL.md §5.3),
#: above 1.2.497.0 so the AWS CLI passes the StartSession response via the environment (§1.3),
#: and at least 1.2.764.0, the version that signs the websocket upgrade as we do and the AWS CLI's
#: recommended minimum (below it the AWS CLI prints an "outdated plugin" warning).
CLIENT_VERSION = "1.2.764.0"
