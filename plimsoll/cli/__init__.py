"""The one `plimsoll` command and its subcommands."""
