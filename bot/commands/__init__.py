"""Mail commands: parsing, the command actions, the runner that answers one mail."""
