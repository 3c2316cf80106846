"""The coordinating server: ServerApp, strategy set-up, checkpoints, provisioning, launcher."""
