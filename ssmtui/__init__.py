"""ssmtui: a terminal UI and CLI for AWS Systems Manager Session Manager."""

__version__ = "0.1.0"

#: The ClientVersion we report in the handshake. It must be a bare dotted number above 1.2.331.0
#: so the agent picks smux for LocalPortForwarding and disables smux keepalive (PROTOCOL.md §5.3),
#: and above 1.2.497.0 so the AWS CLI passes the StartSession response via the environment (§1.3).
CLIENT_VERSION = "1.2.707.0"
